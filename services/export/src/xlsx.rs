//! XLSX through `rust_xlsxwriter`: one worksheet, a bold frozen header row, numbers as
//! numeric cells, dates as date cells, columns sized to what they hold.

use chrono::Datelike;
use rust_xlsxwriter::{ColNum, ExcelDateTime, Format as CellFormat, RowNum, Workbook, Worksheet, XlsxError};

use crate::{Cell, ExportError, Table};

/// Widest a column gets from its header or contents; longer text is still all in the cell.
const MAX_WIDTH: usize = 48;

struct Formats {
    header: CellFormat,
    date: CellFormat,
    percent: CellFormat,
}

pub(crate) fn write(table: &Table) -> Result<Vec<u8>, ExportError> {
    let formats = Formats {
        header: CellFormat::new().set_bold(),
        date: CellFormat::new().set_num_format("yyyy-mm-dd"),
        percent: CellFormat::new().set_num_format("0.0%"),
    };
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name(&table.sheet)?;
    for (col, header) in table.headers.iter().enumerate() {
        sheet.write_string_with_format(0, col_num(col)?, header.label(), &formats.header)?;
    }
    for (i, row) in table.rows.iter().enumerate() {
        let r = RowNum::try_from(i + 1).map_err(|_| XlsxError::RowColumnLimitError)?;
        for (col, cell) in row.iter().enumerate() {
            write_cell(sheet, r, col_num(col)?, cell, &formats)?;
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    for (col, width) in widths(table).into_iter().enumerate() {
        // Character widths to Excel's units: a little room beside the text.
        sheet.set_column_width(col_num(col)?, width as f64 + 2.0)?;
    }
    Ok(workbook.save_to_buffer()?)
}

fn col_num(col: usize) -> Result<ColNum, XlsxError> {
    ColNum::try_from(col).map_err(|_| XlsxError::RowColumnLimitError)
}

fn write_cell(sheet: &mut Worksheet, row: RowNum, col: ColNum, cell: &Cell, f: &Formats) -> Result<(), XlsxError> {
    match cell {
        Cell::Text(s) => sheet.write_string(row, col, s)?,
        // Counts are far below 2^53, so the f64 of a numeric cell holds them exactly.
        #[allow(clippy::cast_precision_loss)]
        Cell::Int(n) => sheet.write_number(row, col, *n as f64)?,
        Cell::Number(x) if x.is_finite() => sheet.write_number(row, col, *x)?,
        Cell::Percent(x) if x.is_finite() => sheet.write_number_with_format(row, col, *x, &f.percent)?,
        Cell::Number(_) | Cell::Percent(_) | Cell::Empty => sheet,
        Cell::Bool(b) => sheet.write_boolean(row, col, *b)?,
        Cell::Date(d) => {
            let date = u16::try_from(d.year())
                .map_err(|_| XlsxError::ParameterError(format!("year of {d} is out of Excel's range")))
                .and_then(|y| ExcelDateTime::from_ymd(y, d.month() as u8, d.day() as u8))?;
            sheet.write_datetime_with_format(row, col, &date, &f.date)?
        }
    };
    Ok(())
}

/// Each column's width in characters: its widest header or cell, CJK counted double.
fn widths(table: &Table) -> Vec<usize> {
    let mut widths: Vec<usize> = table.headers.iter().map(|h| display_width(&h.label()).min(MAX_WIDTH)).collect();
    for row in &table.rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            let cell_width = match cell {
                Cell::Text(s) => display_width(s),
                Cell::Date(_) => 10,
                _ => 8,
            };
            *w = (*w).max(cell_width.min(MAX_WIDTH));
        }
    }
    widths
}

fn display_width(s: &str) -> usize {
    // Hangul Jamo onwards is wide enough for CJK, full-width forms and the like.
    s.chars().map(|c| if c >= '\u{1100}' { 2 } else { 1 }).sum()
}
