//! XLSX through `rust_xlsxwriter`: a table as a worksheet with a bold frozen header row,
//! numbers as numeric cells, dates as date cells, columns sized to what they hold; and
//! the daily report form ([`Form`]) laid out to print, before the table it comes from.

use chrono::Datelike;
use rust_xlsxwriter::{
    ColNum, ExcelDateTime, Format as CellFormat, FormatAlign, FormatBorder, Formula, RowNum, Workbook, Worksheet,
    XlsxError,
};

use crate::form::Form;
use crate::{Cell, ExportError, Table};

/// Widest a column gets from its header or contents; longer text is still all in the cell.
const MAX_WIDTH: usize = 48;

struct Formats {
    header: CellFormat,
    date: CellFormat,
    percent: CellFormat,
}

impl Formats {
    fn new() -> Self {
        Self {
            header: CellFormat::new().set_bold(),
            date: CellFormat::new().set_num_format("yyyy-mm-dd"),
            percent: CellFormat::new().set_num_format("0.0%"),
        }
    }
}

pub(crate) fn write(table: &Table) -> Result<Vec<u8>, ExportError> {
    let mut workbook = Workbook::new();
    write_table(workbook.add_worksheet(), table, &Formats::new())?;
    Ok(workbook.save_to_buffer()?)
}

/// The form, to print, then the whole table it was picked from.
pub(crate) fn write_form(form: &Form, table: &Table) -> Result<Vec<u8>, ExportError> {
    let formats = Formats::new();
    let mut workbook = Workbook::new();
    write_form_sheet(workbook.add_worksheet(), form, &formats)?;
    write_table(workbook.add_worksheet(), table, &formats)?;
    Ok(workbook.save_to_buffer()?)
}

fn write_table(sheet: &mut Worksheet, table: &Table, formats: &Formats) -> Result<(), XlsxError> {
    sheet.set_name(&table.sheet)?;
    for (col, header) in table.headers.iter().enumerate() {
        sheet.write_string_with_format(0, col_num(col)?, header.label(), &formats.header)?;
    }
    for (i, row) in table.rows.iter().enumerate() {
        let r = RowNum::try_from(i + 1).map_err(|_| XlsxError::RowColumnLimitError)?;
        for (col, cell) in row.iter().enumerate() {
            write_cell(sheet, r, col_num(col)?, cell, formats)?;
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    for (col, width) in widths(table).into_iter().enumerate() {
        // Character widths to Excel's units: a little room beside the text.
        sheet.set_column_width(col_num(col)?, width as f64 + 2.0)?;
    }
    Ok(())
}

/// Rows of the form: the title, the group headings, the column headings, then the data.
const FORM_DATA_ROW: RowNum = 3;

/// The form as an office prints it: a title, grouped two-line headings (Chinese above
/// English) repeated on every page, the rows with a filter, a totals row that sums what
/// the filter shows, the unit column frozen; landscape A4, one page wide.
fn write_form_sheet(sheet: &mut Worksheet, form: &Form, formats: &Formats) -> Result<(), XlsxError> {
    let table = &form.table;
    let last_col = col_num(table.headers.len().saturating_sub(1))?;
    let boxed = |f: CellFormat| f.set_border(FormatBorder::Thin).set_text_wrap().set_align(FormatAlign::VerticalCenter);
    let heading = boxed(CellFormat::new().set_bold().set_align(FormatAlign::Center).set_background_color(0xDDEBF7));
    sheet.set_name(&table.sheet)?;
    sheet.merge_range(0, 0, 0, last_col, &form.title, &CellFormat::new().set_bold().set_font_size(14))?;
    let mut first = 0;
    for (group, width) in &form.groups {
        let last = col_num(first + width - 1)?;
        if *width > 1 {
            sheet.merge_range(1, col_num(first)?, 1, last, &group.label(), &heading)?;
        } else {
            sheet.write_string_with_format(1, col_num(first)?, group.label(), &heading)?;
        }
        first += width;
    }
    for (col, header) in table.headers.iter().enumerate() {
        sheet.write_string_with_format(2, col_num(col)?, format!("{}\n{}", header.zh, header.en), &heading)?;
        // Wrapped headings let a column be as narrow as its figures.
        let width = if col == 0 { 24.0 } else { 11.0 };
        sheet.set_column_width(col_num(col)?, width)?;
    }
    sheet.set_row_height(2, 45)?;
    let last_data = FORM_DATA_ROW + RowNum::try_from(table.rows.len()).map_err(|_| XlsxError::RowColumnLimitError)?;
    for (i, row) in table.rows.iter().enumerate() {
        let r = FORM_DATA_ROW + RowNum::try_from(i).map_err(|_| XlsxError::RowColumnLimitError)?;
        for (col, cell) in row.iter().enumerate() {
            write_cell(sheet, r, col_num(col)?, cell, formats)?;
        }
    }
    if !table.rows.is_empty() {
        let total_row = last_data;
        sheet.write_string_with_format(total_row, 0, "合计 Total", &formats.header)?;
        for (col, total) in form.totals.iter().enumerate() {
            let Some(total) = total else { continue };
            let letter = rust_xlsxwriter::utility::column_number_to_name(col_num(col)?);
            // SUBTOTAL(109, …): what the filter shows; the result cached for readers that
            // do not recalculate.
            let formula = Formula::new(format!("=SUBTOTAL(109,{letter}{}:{letter}{})", FORM_DATA_ROW + 1, last_data))
                .set_result(total.to_string());
            sheet.write_formula_with_format(total_row, col_num(col)?, formula, &formats.header)?;
        }
        sheet.autofilter(2, 0, last_data - 1, last_col)?;
    }
    sheet.set_freeze_panes(FORM_DATA_ROW, 1)?;
    sheet.set_landscape();
    sheet.set_paper_size(9); // A4
    sheet.set_print_fit_to_pages(1, 0);
    sheet.set_repeat_rows(1, 2)?;
    sheet.set_print_gridlines(true);
    sheet.set_footer("&L&A&R&P / &N");
    Ok(())
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
