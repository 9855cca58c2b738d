// daybook's operators' console: reads /api/v1 with the token the operator gives, shows a
// unit's day with drill-down, alerts and trends, and reads again when /api/v1/live says
// something changed. Plain JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

const TEXT = {
  zh: {
    title: "daybook 值班台", day: "日期", signout: "退出", connecting: "连接中…", live: "● 实时",
    reconnecting: "连接中断，正在重连…", signin_title: "请输入访问令牌",
    signin_help: "令牌由管理员签发（daybook token issue），只保存在本标签页中。", signin: "登录",
    coverage: "体温检测覆盖率（红线：90%）", children: "下级单位", trends: "趋势：最近", days: "天",
    observation_list: "医学观察名单", alerts: "即时报警", no_alerts: "暂无报警", no_children: "无下级单位",
    level: { province: "全省", city: "市", school: "学校", department: "系部", grade: "年级", class: "班级", dorm: "宿舍" },
    status: { Open: "当日未截止", OnTime: "按时报告", Late: "迟报", Missing: "缺报", Incomplete: "未报齐" },
    version: (v) => v === 0 ? "实时数据（未封存）" : `第 ${v} 版`, revised: "已修订", changes: "本版修改",
    field: "指标", before: "修改前", after: "修改后", sealed_through: "已封存至",
    revisions: "封存后的修订（第1版为封存版）", version_col: "版本",
    zero_report: "零报告",
    population: "总人数", on_campus: "在校", fever: "发热", symptoms: "症状", suspected: "疑似（新增/现有）",
    confirmed: "确诊（新增/现有）", home_obs: "居家观察", central_obs: "集中观察", obs_started: "新开始观察",
    due: "到期待解除", extended: "延长观察", released: "已解除", in_key_area: "在重点地区", two_histories: "两史人员",
    close_contacts: "密切接触者", sick_absent: "因病缺勤", back_in_class: "复课", returned: "返校",
    health_cards: "健康卡", gate: "门岗 进/出", batch: (b) => `第${b}批返校（已返/计划）`, abnormal: "异常人数",
    flags: "规则提示", kept_out: "应留观者入校", no_card: "返校无健康卡", boarder_out: "寄宿生无假外出",
    release_refused: "解除被拒", obs_missing: "应观察未观察", leave_overdue: "请假逾期未归", unrostered: "名册外人员",
    role: { Student: "学生", Teacher: "教师", Staff: "职工", TemporaryHire: "临时工", PropertyManagement: "物业",
      CanteenWorker: "食堂", OtherResident: "其他住校" },
    slot: { Morning: "晨检", Noon: "午检", Evening: "晚检" },
    symptom: { Fever: "发热", Cough: "咳嗽", Fatigue: "乏力", OtherRespiratory: "其他呼吸道" },
    rate: (r) => `应报 ${r.expected} 所 · 已报 ${r.actual} 所 · 按时 ${r.on_time} 所`,
    rate_open: (r) => `应报 ${r.expected} 所 · 尚未达标 ${r.not_yet.length} 所（截止前）`,
    missing: "缺报学校", late: "迟报学校", not_yet: "尚未达标",
    unit: "单位", status_col: "状态", coverage_col: "覆盖率",
    alert: { fever: "发热", suspected: "疑似病例", confirmed: "确诊病例", kept_out_gate_in: "应留观者入校",
      release_refused: "解除观察被拒", finding_overdue: "窗口检查问题逾期未整改", hall_not_inspected: "窗口单位逾期未检查" },
    person: "人员", kind: "类型", start: "开始", end: "预计解除", home: "居家", centralized: "集中",
    obs_status: "状态", refused: "解除被拒", none: "无", persons_more: (n) => `另有 ${n} 人未显示`,
    chart: { fever: "发热", abnormal: "异常人数", coverage: "覆盖率 %", suspected: "疑似（现有）",
      confirmed: "确诊（现有）", observation: "医学观察（居家+集中）", on_campus: "在校人数" },
    lang_switch: "English", bad_token: "令牌无效", error: "出错了：",
    inspections: "窗口单位检查", halls: "登记单位", inspected_today: "当日检查",
    in_window: (d) => `${d}天内已检查`, not_in_window: (d) => `${d}天内未检查`, findings_open: "未整改问题",
    findings_overdue: "逾期未整改", compliance: "达标率", hall: "窗口单位", item: "检查项目", finding: "问题",
    opened: "发现日期", deadline: "整改期限", no_findings: "无未整改问题",
    finding_status: { Open: "未整改", Overdue: "逾期未整改", Rectified: "已整改" },
    items: ["入口测温", "佩戴口罩", "工作人员防护", "工作人员健康监测", "消毒通风", "体温计和消毒液", "不见面服务",
      "健康宣传", "工作人员培训"],
  },
  en: {
    title: "daybook duty console", day: "Day", signout: "Sign out", connecting: "connecting…", live: "● live",
    reconnecting: "connection lost, reconnecting…", signin_title: "Access token",
    signin_help: "Tokens are issued by an administrator (daybook token issue); kept in this tab only.",
    signin: "Sign in", coverage: "Temperature-check coverage (red line: 90 %)", children: "Units below",
    trends: "Trends: the last", days: "days", observation_list: "Persons under medical observation", alerts: "Alerts",
    no_alerts: "No alerts", no_children: "No units below",
    level: { province: "Province", city: "City", school: "School", department: "Department", grade: "Grade",
      class: "Class", dorm: "Dorm" },
    status: { Open: "open (before the deadline)", OnTime: "on time", Late: "late", Missing: "missing",
      Incomplete: "incomplete" },
    version: (v) => v === 0 ? "live figures (not sealed)" : `version ${v}`, revised: "revised",
    changes: "Changed in this version", field: "figure", before: "before", after: "after",
    sealed_through: "sealed through", zero_report: "zero report",
    revisions: "Revisions after the seal (version 1)", version_col: "Version",
    population: "Population", on_campus: "On campus", fever: "Fever", symptoms: "Symptoms",
    suspected: "Suspected (new / current)", confirmed: "Confirmed (new / current)", home_obs: "Home observation",
    central_obs: "Centralized observation", obs_started: "Observation started", due: "Due for release",
    extended: "Observation extended", released: "Released", in_key_area: "In a key area",
    two_histories: "Two histories", close_contacts: "Close contacts", sick_absent: "Sick absent",
    back_in_class: "Back in class", returned: "Returned", health_cards: "Health cards", gate: "Gate in / out",
    batch: (b) => `Return batch ${b} (back / planned)`, abnormal: "Abnormal", flags: "Rule flags",
    kept_out: "Kept-out person came in", no_card: "Returned without health card",
    boarder_out: "Boarder out without leave", release_refused: "Release refused",
    obs_missing: "Observation missing", leave_overdue: "Leave overdue", unrostered: "Not on the roster",
    role: { Student: "students", Teacher: "teachers", Staff: "staff", TemporaryHire: "temporary hires",
      PropertyManagement: "property mgmt", CanteenWorker: "canteen", OtherResident: "other residents" },
    slot: { Morning: "Morning", Noon: "Noon", Evening: "Evening" },
    symptom: { Fever: "fever", Cough: "cough", Fatigue: "fatigue", OtherRespiratory: "other respiratory" },
    rate: (r) => `${r.actual} of ${r.expected} schools reported, ${r.on_time} on time`,
    rate_open: (r) => `${r.expected} schools expected; ${r.not_yet.length} below coverage so far (before the deadline)`,
    missing: "Missing", late: "Late", not_yet: "Not yet",
    unit: "Unit", status_col: "Status", coverage_col: "Coverage",
    alert: { fever: "Fever", suspected: "Suspected case", confirmed: "Confirmed case",
      kept_out_gate_in: "Kept-out person came in", release_refused: "Release refused",
      finding_overdue: "Inspection finding overdue", hall_not_inspected: "Hall not inspected" },
    person: "Person", kind: "Kind", start: "Start", end: "Expected end", home: "home", centralized: "centralized",
    obs_status: "Status", refused: "release refused", none: "none", persons_more: (n) => `${n} more not shown`,
    chart: { fever: "Fever", abnormal: "Abnormal", coverage: "Coverage %", suspected: "Suspected (current)",
      confirmed: "Confirmed (current)", observation: "Under observation", on_campus: "On campus" },
    lang_switch: "中文", bad_token: "The token is not valid", error: "Error: ",
    inspections: "Service-window inspections", halls: "Halls registered", inspected_today: "Inspected that day",
    in_window: (d) => `Inspected within ${d} days`, not_in_window: (d) => `Not inspected within ${d} days`,
    findings_open: "Findings open", findings_overdue: "Findings overdue", compliance: "Compliance", hall: "Hall",
    item: "Item", finding: "Finding", opened: "Opened", deadline: "Deadline", no_findings: "No open findings",
    finding_status: { Open: "open", Overdue: "overdue", Rectified: "rectified" },
    items: ["Entrance temperature", "Masks required", "Staff protection", "Staff health monitored",
      "Disinfection, ventilation", "Thermometers, sanitizer", "No-contact service", "Health publicity",
      "Staff trained"],
  },
};

const state = {
  lang: localStorage.getItem("daybook.lang") || "zh",
  token: sessionStorage.getItem("daybook.token") || "",
  info: null,
  unit: null,
  date: null,
  alertsNext: null,
  alerts: [],
  seq: 0,
  live: null,
  last: null,
};

const $ = (sel) => document.querySelector(sel);
// DOM's append writes null as "null": leave the absent parts out.
const present = (kids) => kids.flat().filter((k) => k !== null && k !== undefined && k !== false);
const t = () => TEXT[state.lang];

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

function headers() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

async function api(path, params) {
  const query = new URLSearchParams(Object.entries(params || {}).filter(([, v]) => v !== null && v !== undefined));
  const response = await fetch(`/api/v1/${path}?${query}`, { headers: headers() });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const e = body.error || {};
    throw new ApiError(response.status, e.code || String(response.status), e.message || response.statusText);
  }
  return body;
}

// ---- units ----

function levelOf(key) { return key === "province" ? "province" : key.slice(0, key.indexOf(":")); }
// Units' display names as their reports give them (a school names itself and its units;
// cities are named by the configuration): unit key → {zh, en}.
const unitNames = {};
function rememberNames(unit, report) {
  if (report && report.names && (report.names.zh || report.names.en)) unitNames[unit] = report.names;
}
function nameOf(key) {
  const named = unitNames[key];
  if (named) {
    const [own, other] = state.lang === "zh" ? [named.zh, named.en] : [named.en, named.zh];
    return own || other;
  }
  const level = levelOf(key);
  if (level === "province") return t().level.province;
  const path = key.slice(key.indexOf(":") + 1);
  const last = path.split("/").pop();
  return `${t().level[level]} ${last}`;
}
function unitLink(key, label) {
  return h("a", { href: hashFor(key, state.date), "data-unit": key }, label || nameOf(key));
}
function hashFor(unit, date) {
  const p = new URLSearchParams({ unit });
  if (date) p.set("date", date);
  return `#${p}`;
}

// ---- navigation ----

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  state.unit = p.get("unit") || (state.info && state.info.home) || "province";
  state.date = p.get("date") || (state.info && state.info.today);
}

window.addEventListener("hashchange", () => { readHash(); render(); connectLive(); });

// ---- sign-in ----

function showLogin(message) {
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  $("#token").focus();
}

$("#login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.token = $("#token").value.trim();
  sessionStorage.setItem("daybook.token", state.token);
  start();
});

$("#signout").addEventListener("click", () => {
  sessionStorage.removeItem("daybook.token");
  state.token = "";
  if (state.live) state.live.abort();
  showLogin();
});

$("#lang").addEventListener("click", () => {
  state.lang = state.lang === "zh" ? "en" : "zh";
  localStorage.setItem("daybook.lang", state.lang);
  applyLang();
  if (state.last) draw(state.last);
  drawAlerts();
});

$("#day").addEventListener("change", () => {
  const day = $("#day").value;
  if (day) location.hash = hashFor(state.unit, day);
});

function applyLang() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.title = t().title;
  for (const el of document.querySelectorAll("[data-t]")) {
    const text = t()[el.dataset.t];
    if (typeof text === "string") el.textContent = text;
  }
  $("#lang").textContent = t().lang_switch;
  setLive($("#live").dataset.state);
}

// ---- live ----

function setLive(s) {
  const el = $("#live");
  el.dataset.state = s;
  el.className = `live ${s === "on" ? "on" : "off"}`;
  el.textContent = s === "on" ? t().live : s === "lost" ? t().reconnecting : t().connecting;
}

// fetch rather than EventSource: EventSource cannot send the Authorization header, and a
// token in the URL would end up in proxies' logs and the browser's history.
function connectLive() {
  if (state.live) state.live.abort();
  const control = new AbortController();
  state.live = control;
  let delay = 500;
  const run = async () => {
    while (!control.signal.aborted) {
      try {
        const query = new URLSearchParams({ unit: state.unit, date: state.date });
        const response = await fetch(`/api/v1/live?${query}`, { headers: headers(), signal: control.signal });
        if (response.status === 401) { showLogin(t().bad_token); return; }
        if (!response.ok) throw new Error(`live: ${response.status}`);
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const frame = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = (frame.match(/^event: (.*)$/m) || [])[1];
            if (event === "hello") { setLive("on"); delay = 500; }
            else if (event === "changed") render();
            else if (event === "alerts") loadAlerts(true);
            else if (event === "error") { setLive("lost"); }
          }
        }
      } catch (e) {
        if (control.signal.aborted) return;
      }
      if (control.signal.aborted) return;
      setLive("lost");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
      // What changed while disconnected.
      render();
      loadAlerts(true);
    }
  };
  run();
}

// ---- the unit's day ----

async function render() {
  const seq = ++state.seq;
  const { unit, date } = state;
  const level = levelOf(unit);
  try {
    const wanted = [
      api("report", { unit, date }),
      api("children", { unit, date }),
      api("series", { unit, to: date, from: daysBefore(date, Number($("#range").value) - 1) }),
      level === "province" || level === "city" ? api("stragglers", { under: unit, date }) : null,
      state.info.persons && !["province", "city"].includes(level) ? api("observation", { unit, date }) : null,
      // A scope without the halls (a school's) is refused them: the section stays hidden.
      level === "province" || level === "city" ? api("inspections", { unit, date }).catch(() => null) : null,
    ];
    const [report, children, series, stragglers, persons, inspections] = await Promise.all(wanted);
    if (seq !== state.seq) return;
    $("#problem").hidden = true;
    state.last = { report, children, series, stragglers, persons, inspections };
    draw(state.last);
  } catch (e) {
    if (seq !== state.seq) return;
    if (e.status === 401) return showLogin(t().bad_token);
    $("#problem").hidden = false;
    $("#problem").textContent = t().error + e.message;
  }
}

function daysBefore(date, n) {
  return new Date(Date.parse(date) - n * 86400000).toISOString().slice(0, 10);
}

$("#range").addEventListener("change", () => render());

function draw({ report, children, series, stragglers, persons, inspections }) {
  const r = report.report;
  const T = t();
  rememberNames(report.unit, r);
  for (const child of (children && children.children) || []) rememberNames(child.unit, child.report);
  // Breadcrumb.
  const crumbs = $("#crumbs");
  crumbs.replaceChildren();
  for (const a of report.above) {
    crumbs.append(a.readable ? unitLink(a.unit) : h("span", {}, nameOf(a.unit)), h("span", { class: "sep" }, "›"));
  }
  crumbs.append(h("strong", {}, nameOf(report.unit)));
  $("#unit-title").textContent = `${nameOf(report.unit)} · ${r.date}`;
  // The day picker.
  const day = $("#day");
  day.max = state.info.today;
  const horizon = new Date(Date.parse(state.info.today) - state.info.horizon_days * 86400000).toISOString().slice(0, 10);
  day.min = report.first_day && report.first_day > horizon ? report.first_day : horizon;
  day.value = r.date;
  // Status, version, what the version changed.
  $("#status-line").replaceChildren(...present([
    h("span", { id: "status", class: `status ${statusClass(r.status)}`, "data-status": r.status }, T.status[r.status]),
    " ",
    h("span", { id: "version", "data-version": r.version }, T.version(r.version)),
    r.revised ? h("span", { class: "status late" }, T.revised) : null,
    r.zero_report ? h("span", { class: "muted" }, ` · ${T.zero_report}`) : null,
    report.sealed_through ? h("span", { class: "muted" }, ` · ${T.sealed_through} ${report.sealed_through}`) : null,
  ]));
  const changes = $("#changes");
  changes.replaceChildren();
  if (report.revisions.length) {
    // Every version after the seal, with what it changed against the one before.
    changes.append(h("table", { id: "revisions" },
      h("caption", {}, T.revisions),
      h("tr", {}, h("th", {}, T.version_col), h("th", {}, T.status_col), h("th", {}, T.changes)),
      report.revisions.map((v) => h("tr", { "data-version": v.version },
        h("td", {}, T.version(v.version)), h("td", {}, T.status[v.status]),
        h("td", { class: "changed" }, v.changes.map((c) => `${c.field} ${c.before}→${c.after}`).join("; "))))));
  } else if (r.changes.length) {
    changes.append(h("table", { id: "change-table" },
      h("caption", {}, T.changes),
      h("tr", {}, h("th", {}, T.field), h("th", {}, T.before), h("th", {}, T.after)),
      r.changes.map((c) => h("tr", {}, h("td", {}, c.field), h("td", {}, c.before), h("td", {}, c.after)))));
  }
  drawFigures(r);
  drawCoverage(r);
  drawRate(r, stragglers);
  drawChildren(children.children);
  drawTrends(series.days);
  drawPersons(persons);
  drawInspections(inspections);
}

function statusClass(s) {
  return { Open: "open", OnTime: "on_time", Late: "late", Missing: "missing", Incomplete: "incomplete" }[s];
}

function card(key, label, value, opts) {
  const o = opts || {};
  const cls = ["card", o.alarm && Number(String(value).split(" ")[0]) > 0 ? "alarm" : "", o.flag && value > 0 ? "flag" : ""];
  return h("div", { class: cls.join(" "), "data-figure": key },
    h("div", { class: "label" }, label), h("div", { class: "value" }, value), o.sub ? h("div", { class: "sub" }, o.sub) : null);
}

function drawFigures(r) {
  const T = t();
  const roles = r.population_by_role.filter(([, n]) => n > 0).map(([role, n]) => `${T.role[role]} ${n}`).join(" · ");
  const symptoms = r.symptoms.filter(([, n]) => n > 0).map(([s, n]) => `${T.symptom[s]} ${n}`).join(" · ");
  const symptomTotal = r.symptoms.reduce((sum, [, n]) => sum + n, 0);
  const cards = [
    card("population", T.population, r.population, { sub: roles }),
    card("present_on_campus", T.on_campus, r.present_on_campus),
    card("fever", T.fever, r.fever, { alarm: true }),
    card("symptoms", T.symptoms, symptomTotal, { alarm: true, sub: symptoms }),
    card("abnormal", T.abnormal, r.abnormal, { alarm: true }),
    card("suspected", T.suspected, `${r.suspected_new} / ${r.suspected_current}`, { alarm: r.suspected_current > 0 }),
    card("confirmed", T.confirmed, `${r.confirmed_new} / ${r.confirmed_current}`, { alarm: r.confirmed_current > 0 }),
    card("home_observation", T.home_obs, r.home_observation),
    card("centralized_observation", T.central_obs, r.centralized_observation),
    card("observation_started", T.obs_started, r.observation_started),
    card("due_for_release", T.due, r.due_for_release),
    card("observation_extended", T.extended, r.observation_extended),
    card("released", T.released, r.released),
    card("in_key_area", T.in_key_area, r.in_key_area),
    card("two_histories", T.two_histories, r.two_histories),
    card("close_contacts", T.close_contacts, r.close_contacts),
    card("sick_absent", T.sick_absent, r.sick_absent),
    card("back_in_class", T.back_in_class, r.back_in_class),
    card("returned", T.returned, r.returned),
    card("health_cards", T.health_cards, r.health_cards),
    card("gate", T.gate, `${r.gate_in} / ${r.gate_out}`),
    ...r.batches.map((b) => card(`batch_${b.batch}`, T.batch(b.batch), `${b.returned} / ${b.planned}`)),
    card("gate_in_kept_out", T.kept_out, r.gate_in_kept_out, { flag: true }),
    card("returned_without_health_card", T.no_card, r.returned_without_health_card, { flag: true }),
    card("boarder_left_without_leave", T.boarder_out, r.boarder_left_without_leave, { flag: true }),
    card("releases_refused", T.release_refused, r.releases_refused, { flag: true }),
    card("observation_missing", T.obs_missing, r.observation_missing, { flag: true }),
    card("leave_overdue", T.leave_overdue, r.leave_overdue, { flag: true }),
    card("unrostered", T.unrostered, r.unrostered, { flag: true }),
  ];
  $("#figures").replaceChildren(...cards);
}

function pct(done, expected) { return expected > 0 ? Math.round((done / expected) * 1000) / 10 : null; }

function drawCoverage(r) {
  const rows = r.checks.filter((c) => c.expected > 0 || ["Morning", "Noon", "Evening"].includes(c.slot))
    .filter((c) => t().slot[c.slot]).map((c) => {
      const p = pct(c.done, c.expected);
      const width = Math.min(p || 0, 100);
      return h("div", { class: "bar", "data-slot": c.slot },
        h("span", {}, t().slot[c.slot]),
        h("div", { class: "track" }, h("div", { class: `fill ${p !== null && p < 90 ? "low" : ""}`, style: `width:${width}%` }),
          h("div", { class: "mark" })),
        h("span", {}, p === null ? "—" : `${p}% (${c.done}/${c.expected})`));
    });
  $("#coverage").replaceChildren(...rows);
}

function drawRate(r, s) {
  const box = $("#rate");
  box.replaceChildren();
  if (!s) return;
  const T = t();
  const links = (label, units, cls) => units.length
    ? h("p", { class: `links ${cls}` }, h("strong", {}, `${label}: `), units.map((u) => unitLink(u))) : null;
  if (s.sealed) {
    box.append(...present([h("p", { id: "reporting" }, T.rate(s)), links(T.missing, s.missing, "missing"), links(T.late, s.late, "late")]));
  } else {
    box.append(...present([h("p", { id: "reporting" }, T.rate_open(s)), links(T.not_yet, s.not_yet, "not-yet")]));
  }
}

function drawChildren(children) {
  const T = t();
  const table = $("#children");
  table.replaceChildren();
  if (!children.length) {
    table.append(h("tr", {}, h("td", { class: "muted" }, T.no_children)));
    return;
  }
  table.append(h("tr", {}, h("th", {}, T.unit), h("th", {}, T.population), h("th", {}, T.on_campus),
    h("th", {}, T.coverage_col), h("th", {}, T.fever), h("th", {}, T.abnormal), h("th", {}, T.suspected),
    h("th", {}, T.confirmed), h("th", {}, T.central_obs), h("th", {}, T.status_col)));
  for (const { unit, report: r } of children) {
    const expected = Math.max(0, ...r.checks.map((c) => c.expected));
    const p = pct(r.checked_any, expected);
    table.append(h("tr", { "data-row": unit },
      h("td", {}, unitLink(unit)), h("td", {}, r.population), h("td", {}, r.present_on_campus),
      h("td", { class: p !== null && p < 90 ? "alarm" : "" }, p === null ? "—" : `${p}%`),
      h("td", { class: r.fever ? "alarm" : "" }, r.fever), h("td", { class: r.abnormal ? "alarm" : "" }, r.abnormal),
      h("td", {}, `${r.suspected_new}/${r.suspected_current}`), h("td", {}, `${r.confirmed_new}/${r.confirmed_current}`),
      h("td", {}, r.centralized_observation + r.home_observation),
      h("td", {}, h("span", { class: `status ${statusClass(r.status)}` }, T.status[r.status]))));
  }
}

function drawTrends(days) {
  const T = t();
  const series = [
    ["fever", (r) => r.fever],
    ["abnormal", (r) => r.abnormal],
    ["coverage", (r) => { const e = Math.max(0, ...r.checks.map((c) => c.expected)); return e ? (100 * r.checked_any) / e : 0; }],
    ["suspected", (r) => r.suspected_current],
    ["confirmed", (r) => r.confirmed_current],
    ["observation", (r) => r.home_observation + r.centralized_observation],
    ["on_campus", (r) => r.present_on_campus],
  ];
  const charts = series.map(([key, pick]) => chart(key, T.chart[key], days.map((r) => [r.date, pick(r)]), key === "coverage" ? 90 : null));
  $("#trends").replaceChildren(...charts);
}

function chart(key, label, points, line) {
  const W = 300, H = 80, P = 4;
  const max = Math.max(1, line || 0, ...points.map(([, v]) => v));
  const x = (i) => P + (points.length > 1 ? (i * (W - 2 * P)) / (points.length - 1) : (W - 2 * P) / 2);
  const y = (v) => H - P - (v / max) * (H - 2 * P);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const add = (tag, attrs) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    svg.append(el);
    return el;
  };
  if (line) add("line", { x1: 0, x2: W, y1: y(line), y2: y(line), stroke: "#c62828", "stroke-dasharray": "4 3" });
  add("polyline", {
    points: points.map(([, v], i) => `${x(i)},${y(v)}`).join(" "),
    fill: "none", stroke: "#1565c0", "stroke-width": 2, "vector-effect": "non-scaling-stroke",
  });
  points.forEach(([d, v], i) => {
    const dot = add("circle", { cx: x(i), cy: y(v), r: 2.5, fill: "#1565c0" });
    const title = document.createElementNS(ns, "title");
    title.textContent = `${d}: ${Math.round(v * 10) / 10}`;
    dot.append(title);
  });
  const last = points.length ? Math.round(points[points.length - 1][1] * 10) / 10 : "—";
  const range = points.length ? `${points[0][0]} – ${points[points.length - 1][0]}` : "";
  return h("div", { class: "chart", "data-chart": key },
    h("div", { class: "label" }, `${label}: `, h("strong", {}, last)), svg, h("div", { class: "sub muted" }, range));
}

function drawPersons(persons) {
  const box = $("#persons-box");
  box.hidden = !persons;
  if (!persons) return;
  const T = t();
  const table = $("#persons");
  table.replaceChildren(h("tr", {}, h("th", {}, T.person), h("th", {}, T.unit), h("th", {}, T.kind),
    h("th", {}, T.start), h("th", {}, T.end), h("th", {}, T.obs_status)));
  const shown = persons.persons.slice(0, 200);
  for (const p of shown) {
    const [kind, start, end] = p.observation;
    const place = [p.placement.department, p.placement.grade, p.placement.class].filter(Boolean).join("/");
    table.append(h("tr", {}, h("td", {}, p.person), h("td", {}, `${p.school} ${place}${p.placement.dorm ? ` · ${p.placement.dorm}` : ""}`),
      h("td", {}, kind === "Home" ? T.home : T.centralized), h("td", {}, start), h("td", {}, end),
      h("td", {}, p.release_refused ? T.refused : "")));
  }
  if (!shown.length) table.append(h("tr", {}, h("td", { class: "muted" }, T.none)));
  if (persons.persons.length > shown.length) table.append(h("tr", {}, h("td", { class: "muted" }, T.persons_more(persons.persons.length - shown.length))));
}

// A unit's service-window inspections: its figures, its cities' or halls' rows, the
// findings open at the day's end (overdue ones marked).
function drawInspections(inspections) {
  const box = $("#inspections-box");
  const r = inspections && inspections.report;
  box.hidden = !r || (r.halls_registered === 0 && r.halls_ever_inspected === 0);
  if (box.hidden) return;
  const T = t();
  const rate = (x) => x.compliance_rate === null ? "—" : `${Math.round(x.compliance_rate * 1000) / 10}%`;
  $("#inspection-figures").replaceChildren(
    card("halls", T.halls, r.halls_registered),
    card("inspected_today", T.inspected_today, r.halls_inspected),
    card("in_window", T.in_window(r.window_days), r.halls_inspected_in_window),
    card("findings_open", T.findings_open, r.findings_open),
    card("findings_overdue", T.findings_overdue, r.findings_overdue, { alarm: true }),
    card("compliance", T.compliance, rate(r)));
  const table = $("#inspection-children");
  table.replaceChildren(h("tr", {}, h("th", {}, T.unit), h("th", {}, T.halls), h("th", {}, T.inspected_today),
    h("th", {}, T.in_window(r.window_days)), h("th", {}, T.findings_open), h("th", {}, T.findings_overdue),
    h("th", {}, T.compliance)));
  for (const c of inspections.children) {
    const name = (state.lang === "zh" ? c.names.zh : c.names.en) || c.names.zh || c.names.en;
    table.append(h("tr", { "data-row": c.unit }, h("td", {}, name ? `${name} (${c.unit})` : c.unit),
      h("td", {}, c.halls_registered), h("td", {}, c.halls_inspected), h("td", {}, c.halls_inspected_in_window),
      h("td", {}, c.findings_open), h("td", { class: c.findings_overdue ? "alarm" : "" }, c.findings_overdue),
      h("td", {}, rate(c))));
  }
  const findings = $("#findings");
  findings.replaceChildren(h("caption", {}, T.findings_open), h("tr", {}, h("th", {}, T.hall), h("th", {}, T.item), h("th", {}, T.finding),
    h("th", {}, T.opened), h("th", {}, T.deadline), h("th", {}, T.status_col)));
  for (const { hall, finding: f } of inspections.findings) {
    const item = T.items[["EntranceTemperature", "MasksRequired", "StaffProtection", "StaffHealthMonitored",
      "DisinfectionVentilation", "ThermometersSanitizer", "NoContactService", "HealthPublicity",
      "StaffTrained"].indexOf(f.item)];
    findings.append(h("tr", { "data-finding": `${hall}/${f.inspection_id}/${f.item}`, "data-status": f.status },
      h("td", {}, hall), h("td", {}, item), h("td", {}, f.finding), h("td", {}, f.opened), h("td", {}, f.deadline),
      h("td", { class: f.status === "Overdue" ? "alarm" : "" }, T.finding_status[f.status])));
  }
  if (!inspections.findings.length) findings.append(h("tr", {}, h("td", { class: "muted" }, T.no_findings)));
}

// ---- alerts ----

async function loadAlerts(more) {
  if (!state.info.alerts) return;
  try {
    const params = more && state.alertsNext !== null ? { after: state.alertsNext } : { limit: 50 };
    const got = await api("alerts", params);
    state.alertsNext = got.next;
    const known = new Set(state.alerts.map((a) => a.cursor));
    const fresh = got.alerts.filter((a) => !known.has(a.cursor));
    fresh.forEach((a) => { a.fresh = more; });
    state.alerts = [...fresh, ...state.alerts].sort((a, b) => b.cursor - a.cursor).slice(0, 200);
    drawAlerts();
  } catch (e) {
    if (e.status === 401) showLogin(t().bad_token);
  }
}

function drawAlerts() {
  const T = t();
  const list = $("#alerts");
  list.replaceChildren();
  if (!state.alerts.length) list.append(h("li", { class: "muted empty" }, T.no_alerts));
  for (const a of state.alerts) {
    // The person's own unit: the lowest one named (a placement left empty names none).
    const named = a.units.filter((u) => !u.endsWith("/") && !u.endsWith(":"));
    const unit = named[named.length - 1] || `school:${a.school}`;
    const what = a.kind === "fever" ? `${T.alert.fever} ${a.celsius.toFixed(1)} °C` : T.alert[a.kind] || a.kind;
    const when = a.occurred_at.replace("T", " ").slice(0, 16);
    list.append(h("li", { class: `${a.kind} ${a.fresh ? "fresh" : ""}`, "data-kind": a.kind, "data-cursor": a.cursor },
      h("div", {}, h("strong", {}, what), a.person ? ` · ${T.person} ${a.person}` : ""),
      // A hall has no daily report to open.
      h("div", {}, unit.startsWith("hall:") ? `${T.hall} ${a.school}` : unitLink(unit, `${nameOf(unit)} (${a.school})`)),
      a.reason ? h("div", { class: "sub" }, a.reason) : null,
      h("div", { class: "when" }, when)));
    a.fresh = false;
  }
}

// ---- start ----

async function start() {
  applyLang();
  try {
    state.info = await api("info");
  } catch (e) {
    if (e.status === 401) return showLogin(state.token ? t().bad_token : "");
    $("#problem").hidden = false;
    $("#problem").textContent = t().error + e.message;
    return;
  }
  $("#login").hidden = true;
  readHash();
  await render();
  state.alerts = [];
  state.alertsNext = null;
  await loadAlerts(false);
  connectLive();
}

start();
