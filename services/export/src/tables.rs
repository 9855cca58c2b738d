//! The two tables the offices read (DOMAIN.md, "What the offices read"): the daily
//! reports, one row per unit and day, and the list of persons under medical observation.
//!
//! Columns are fixed whatever the rows hold, so two exports line up column by column. Each
//! column is declared once, header and value together, so neither can drift from the
//! other. Words the offices read in a cell (a level, a status, an observation type) are
//! written in both languages too when the word is known, and as given otherwise.

use domain::DailyReport;
use domain::event::{Role, Slot, Symptom};

use crate::{Cell, Header, Table};

/// A daily report as it is published: the report and where its publication stands.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    pub report: DailyReport,
    /// The sealed version; 0 while the report is not sealed yet.
    pub version: u32,
    /// Where the report stands against its deadline: "on_time", "late", "missing", "open"; a city or the province "incomplete".
    pub status: String,
    /// Changed after it was first sealed.
    pub revised: bool,
    /// Share of the expected temperature checks done, 0..=1.
    pub coverage: f64,
}

/// One person under home or centralized medical observation, as the list shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservationRow {
    /// The unit key the person is listed under (e.g. `class:S001/D01/2019/C03`).
    pub unit: String,
    pub school: String,
    pub person: String,
    /// "home" or "centralized".
    pub kind: String,
    pub start: domain::Day,
    pub expected_end: domain::Day,
    /// "under observation", "under observation, release refused", "due for release".
    pub status: String,
}

type Value<R> = Box<dyn Fn(&R) -> Cell>;

struct Column<R> {
    header: Header,
    value: Value<R>,
}

/// A column of the report table (a plain function so closures know their argument).
fn rep(zh: &'static str, en: &'static str, value: impl Fn(&ReportRow) -> Cell + 'static) -> Column<ReportRow> {
    Column { header: Header::new(zh, en), value: Box::new(value) }
}

/// A column of the observation list.
fn obs(
    zh: &'static str,
    en: &'static str,
    value: impl Fn(&ObservationRow) -> Cell + 'static,
) -> Column<ObservationRow> {
    Column { header: Header::new(zh, en), value: Box::new(value) }
}

fn table<R>(sheet: &str, columns: &[Column<R>], rows: &[R]) -> Table {
    Table {
        sheet: sheet.to_owned(),
        headers: columns.iter().map(|c| c.header).collect(),
        rows: rows.iter().map(|r| columns.iter().map(|c| (c.value)(r)).collect()).collect(),
    }
}

/// One row per report: unit key, level, date, the publication columns (version, status,
/// revised, coverage), then every count of [`DailyReport`] in the order of the report:
/// population (total and by role), whereabouts, temperature checks per slot (done, and
/// expected for the three daily checks), fever and symptoms, cases, observation, return
/// batches (planned, returned, not yet returned), gate flags, the day's flows, and
/// whether it is a zero report.
pub fn report_table(reports: &[ReportRow]) -> Table {
    table("日报告 Daily reports", &report_columns(), reports)
}

/// One row per person: unit, school, person, observation type, start date, expected end
/// date, status (DOMAIN.md's table of persons under home or centralized observation).
pub fn observation_table(persons: &[ObservationRow]) -> Table {
    let columns: [Column<ObservationRow>; 7] = [
        obs("单位", "Unit", |p| p.unit.as_str().into()),
        obs("学校", "School", |p| p.school.as_str().into()),
        obs("人员编号", "Person", |p| p.person.as_str().into()),
        obs("观察类型", "Observation type", |p| word(&p.kind).into()),
        obs("开始日期", "Start date", |p| p.start.into()),
        obs("预计解除日期", "Expected end date", |p| p.expected_end.into()),
        obs("状态", "Status", |p| word(&p.status).into()),
    ];
    table("医学观察 Observation", &columns, persons)
}

fn report_columns() -> Vec<Column<ReportRow>> {
    let mut c: Vec<Column<ReportRow>> = vec![
        rep("单位", "Unit", |r| r.report.unit.to_string().into()),
        rep("名称", "Name", |r| r.report.names.label().into()),
        rep("层级", "Level", |r| word(r.report.unit.level.as_str()).into()),
        rep("日期", "Date", |r| r.report.date.into()),
        rep("版本（0=未封存）", "Version (0 = not sealed)", |r| r.version.into()),
        rep("报送状态", "Report status", |r| word(&r.status).into()),
        rep("已修订", "Revised", |r| r.revised.into()),
        rep("体温检测覆盖率", "Check coverage", |r| Cell::Percent(r.coverage)),
        rep("总人数", "Population", |r| r.report.population.into()),
    ];
    for role in Role::ALL {
        let (zh, en) = role_header(role);
        c.push(rep(zh, en, move |r| count(&r.report.population_by_role, &role).into()));
    }
    c.extend([
        rep("在校", "Present on campus", |r| r.report.present_on_campus.into()),
        rep("在湖北或重点疫区", "In a key area", |r| r.report.in_key_area.into()),
        rep("两史人员", "Two histories", |r| r.report.two_histories.into()),
        rep("密切接触者", "Close contacts", |r| r.report.close_contacts.into()),
    ]);
    for slot in Slot::ALL {
        let (done_zh, done_en, expected) = slot_headers(slot);
        c.push(rep(done_zh, done_en, move |r| checks(&r.report, slot).map_or(0, |s| s.done).into()));
        // Gate and canteen checks have no quota: their expected count is always zero.
        if let Some((zh, en)) = expected {
            c.push(rep(zh, en, move |r| checks(&r.report, slot).map_or(0, |s| s.expected).into()));
        }
    }
    c.push(rep("发热", "Fever", |r| r.report.fever.into()));
    for symptom in Symptom::ALL {
        let (zh, en) = symptom_header(symptom);
        c.push(rep(zh, en, move |r| count(&r.report.symptoms, &symptom).into()));
    }
    c.extend([
        rep("新增疑似", "Suspected, new", |r| r.report.suspected_new.into()),
        rep("现有疑似", "Suspected, current", |r| r.report.suspected_current.into()),
        rep("新增确诊", "Confirmed, new", |r| r.report.confirmed_new.into()),
        rep("现有确诊", "Confirmed, current", |r| r.report.confirmed_current.into()),
        rep("居家医学观察", "Home medical observation", |r| r.report.home_observation.into()),
        rep("集中医学观察", "Centralized medical observation", |r| r.report.centralized_observation.into()),
        rep("新增医学观察", "Observation started", |r| r.report.observation_started.into()),
        rep("期满待解除", "Due for release", |r| r.report.due_for_release.into()),
        rep("延长医学观察", "Observation extended", |r| r.report.observation_extended.into()),
        rep("解除医学观察", "Released from observation", |r| r.report.released.into()),
    ]);
    for batch in 1..=3 {
        let [planned, returned, not_yet] = batch_headers(batch);
        c.push(rep(planned.0, planned.1, move |r| batch_count(&r.report, batch).map_or(0, |b| b.planned).into()));
        c.push(rep(returned.0, returned.1, move |r| batch_count(&r.report, batch).map_or(0, |b| b.returned).into()));
        c.push(rep(not_yet.0, not_yet.1, move |r| {
            batch_count(&r.report, batch).map_or(0, |b| b.planned.saturating_sub(b.returned)).into()
        }));
    }
    c.extend([
        rep("违规入校（观察或患病人员）", "Flag: kept-out person came in", |r| {
            r.report.gate_in_kept_out.into()
        }),
        rep("无健康卡返校", "Flag: returned without health card", |r| {
            r.report.returned_without_health_card.into()
        }),
        rep("住校生未请假离校", "Flag: boarder left without leave", |r| {
            r.report.boarder_left_without_leave.into()
        }),
        rep("解除观察被拒（未满期）", "Flag: release refused, not yet due", |r| {
            r.report.releases_refused.into()
        }),
        rep("应隔离未隔离", "Flag: not under the observation required", |r| r.report.observation_missing.into()),
        rep("请假逾期未返校", "Flag: leave run out, not back", |r| r.report.leave_overdue.into()),
        rep("名册外人员", "Flag: events for persons not on the roster", |r| r.report.unrostered.into()),
        rep("因病缺勤", "Sick absent", |r| r.report.sick_absent.into()),
        rep("新增因病缺勤", "Sick absence started", |r| r.report.sick_absence_started.into()),
        rep("复课", "Back in class", |r| r.report.back_in_class.into()),
        rep("当日返校", "Returned today", |r| r.report.returned.into()),
        rep("健康卡", "Health cards", |r| r.report.health_cards.into()),
        rep("门岗进校", "Gate: entered", |r| r.report.gate_in.into()),
        rep("门岗离校", "Gate: left", |r| r.report.gate_out.into()),
        rep("已测温人数", "Checked (any daily check)", |r| r.report.checked_any.into()),
        rep("截止前应测人数", "Expected, on the roster by the deadline", |r| {
            r.report.expected_by_deadline.into()
        }),
        rep("截止前已测人数", "Checked by the deadline", |r| r.report.checked_by_deadline.into()),
        rep("异常人数", "Persons with anything abnormal", |r| r.report.abnormal.into()),
        rep("零报告", "Zero report", |r| r.report.zero_report.into()),
    ]);
    c
}

fn count<K: PartialEq>(counts: &[(K, u32)], key: &K) -> u32 {
    counts.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n)
}

fn checks(report: &DailyReport, slot: Slot) -> Option<&domain::report::SlotCoverage> {
    report.checks.iter().find(|c| c.slot == slot)
}

fn batch_count(report: &DailyReport, batch: u32) -> Option<&domain::report::BatchCount> {
    report.batches.iter().find(|b| b.batch == batch)
}

fn role_header(role: Role) -> (&'static str, &'static str) {
    match role {
        Role::Student => ("学生", "Students"),
        Role::Teacher => ("教师", "Teachers"),
        Role::Staff => ("职工", "Staff"),
        Role::TemporaryHire => ("临时聘用人员", "Temporary hires"),
        Role::PropertyManagement => ("物业人员", "Property management"),
        Role::CanteenWorker => ("食堂从业人员", "Canteen workers"),
        Role::OtherResident => ("其他在校居住人员", "Other residents"),
    }
}

type Pair = (&'static str, &'static str);

fn slot_headers(slot: Slot) -> (&'static str, &'static str, Option<Pair>) {
    match slot {
        Slot::Morning => ("晨检已测", "Morning checks done", Some(("晨检应测", "Morning checks expected"))),
        Slot::Noon => ("午检已测", "Noon checks done", Some(("午检应测", "Noon checks expected"))),
        Slot::Evening => ("晚检已测", "Evening checks done", Some(("晚检应测", "Evening checks expected"))),
        Slot::Gate => ("门岗测温", "Gate checks", None),
        Slot::Canteen => ("就餐前测温", "Canteen checks", None),
    }
}

fn symptom_header(symptom: Symptom) -> Pair {
    match symptom {
        Symptom::Fever => ("发热症状", "Symptom: fever"),
        Symptom::Cough => ("咳嗽", "Symptom: cough"),
        Symptom::Fatigue => ("乏力", "Symptom: fatigue"),
        Symptom::OtherRespiratory => ("其他呼吸道症状", "Symptom: other respiratory"),
    }
}

fn batch_headers(batch: u32) -> [Pair; 3] {
    match batch {
        1 => [
            ("第一批计划返校", "Batch 1 planned"),
            ("第一批已返校", "Batch 1 returned"),
            ("第一批未返校", "Batch 1 not yet returned"),
        ],
        2 => [
            ("第二批计划返校", "Batch 2 planned"),
            ("第二批已返校", "Batch 2 returned"),
            ("第二批未返校", "Batch 2 not yet returned"),
        ],
        _ => [
            ("第三批计划返校", "Batch 3 planned"),
            ("第三批已返校", "Batch 3 returned"),
            ("第三批未返校", "Batch 3 not yet returned"),
        ],
    }
}

/// A word the caller passes in a cell, in both languages when it is one we know.
fn word(w: &str) -> String {
    let zh = match w {
        "province" => "省",
        "city" => "市",
        "school" => "学校",
        "department" => "院系",
        "grade" => "年级",
        "class" => "班级",
        "dorm" => "宿舍",
        "on_time" => "按时",
        "late" => "迟报",
        "missing" => "缺报",
        "incomplete" => "部分报送",
        "open" => "未截止",
        "home" => "居家医学观察",
        "centralized" => "集中医学观察",
        "under observation" => "观察中",
        "due for release" => "期满待解除",
        "released" => "已解除",
        _ => return w.to_owned(),
    };
    format!("{zh} / {w}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_is_unique_in_both_languages() {
        let headers = report_table(&[]).headers;
        for (i, h) in headers.iter().enumerate() {
            assert!(!h.zh.is_empty() && !h.en.is_empty(), "{h:?}");
            assert!(h.zh.chars().any(|c| c >= '\u{4e00}'), "no Chinese in {h:?}");
            for other in &headers[i + 1..] {
                assert_ne!(h.zh, other.zh, "{h:?} / {other:?}");
                assert_ne!(h.en, other.en, "{h:?} / {other:?}");
            }
        }
    }

    #[test]
    fn known_words_get_their_chinese_and_others_pass_through() {
        assert_eq!(word("late"), "迟报 / late");
        assert_eq!(word("centralized"), "集中医学观察 / centralized");
        assert_eq!(word("something new"), "something new");
    }
}
