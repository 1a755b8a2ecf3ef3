// Checks Patron's alerts (k8s/base/prometheusrule.yaml) and Grafana dashboard
// (k8s/base/grafana-dashboard.yaml):
// - every metric an alert expression or a panel query names is one the C
//   sources register (patron_metrics_counter/gauge/histogram), a histogram's
//   _bucket/_sum/_count, or one of the few EXTERNAL names;
// - the PrometheusRule has what the Prometheus Operator and Alertmanager
//   need: groups of rules, each alert with an expression, a duration, a
//   severity, a summary, a description and a runbook_url pointing at its own
//   section of docs/operations.md — a section that exists;
// - every alert section of docs/operations.md has its alert;
// - the dashboard is a ConfigMap Grafana's sidecar loads, its JSON parses
//   and has panels, each with queries.
// Used by check.js (on rendered overlays, and with --monitoring on the base
// files directly, which needs no kubectl):
//   node check.js --monitoring [--operations=FILE] FILE...
//   node check.js --monitoring-self-test FILE...   every deliberate break caught
'use strict';

const fs = require('fs');
const path = require('path');
const YAML = require('yaml');

const ROOT = path.join(__dirname, '..', '..');

// Metrics that come from elsewhere, and from where (docs/operations.md, "Alerts").
const EXTERNAL = {
    kafka_consumergroup_lag_sum: 'kafka_exporter',
    kube_deployment_status_replicas_unavailable: 'kube-state-metrics',
};
const SEVERITIES = ['critical', 'warning', 'info'];
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);
const RUNBOOK = /(?:^|\/)docs\/operations\.md#([A-Za-z0-9_-]+)$/;

// ------------------------------------------------------------ the sources --

function cFiles(dir) {
    const out = [];
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) out.push(...cFiles(p));
        else if (e.name.endsWith('.c')) out.push(p);
    }
    return out;
}

// The argument text of the call whose '(' is at text[open].
function callArgs(text, open) {
    let depth = 0;
    for (let i = open; i < text.length; i++) {
        const ch = text[i];
        if (ch === '"') {
            for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
        } else if (ch === '(') depth++;
        else if (ch === ')' && --depth === 0) return text.slice(open + 1, i);
    }
    return '';
}

// name -> 'counter' | 'gauge' | 'histogram', from every registration in
// services/. A name passed through a variable is the nearest earlier
// `variable = "patron_..."` in the same file.
function metricNames(root) {
    const names = new Map();
    for (const file of cFiles(path.join(root, 'services'))) {
        const text = fs.readFileSync(file, 'utf8');
        const call = /\bpatron_metrics_(counter|gauge|histogram)\s*\(/g;
        let m;
        while ((m = call.exec(text))) {
            const args = callArgs(text, m.index + m[0].length - 1);
            let name = (/"(patron_[a-z0-9_]+)"/.exec(args) || [])[1];
            if (!name) {
                const ident = (args.split(',')[1] || '').trim();
                if (!/^[A-Za-z_]\w*$/.test(ident)) continue;
                const assign = new RegExp(`\\b${ident}\\s*=\\s*"(patron_[a-z0-9_]+)"`, 'g');
                let a;
                while ((a = assign.exec(text)) && a.index < m.index) name = a[1];
            }
            if (name) names.set(name, m[1]);
        }
    }
    if (names.size < 20)
        throw new Error(`found only ${names.size} metrics in ${root}/services: has the code moved?`);
    return names;
}

// GitHub's anchors of a Markdown file's headings.
function anchors(markdown) {
    const seen = new Map();
    const out = new Set();
    let fence = false;
    for (const line of markdown.split('\n')) {
        if (/^```/.test(line)) fence = !fence;
        const h = !fence && /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
        if (!h) continue;
        const text = h[1].replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
        const base = text
            .toLowerCase()
            .replace(/[^\p{L}\p{N} _-]/gu, '')
            .replace(/ /g, '-');
        const n = seen.get(base) || 0;
        seen.set(base, n + 1);
        out.add(n ? `${base}-${n}` : base);
    }
    return out;
}

// The alert sections of docs/operations.md: "### Patron..." under "## Alerts".
function alertSections(markdown) {
    const out = [];
    let inAlerts = false;
    for (const line of markdown.split('\n')) {
        if (/^## /.test(line)) inAlerts = /^## Alerts\s*$/.test(line);
        const h = inAlerts && /^### (Patron\w+)\s*$/.exec(line);
        if (h) out.push(h[1]);
    }
    return out;
}

function context(operationsFile) {
    const file = operationsFile || path.join(ROOT, 'docs', 'operations.md');
    const text = fs.readFileSync(file, 'utf8');
    return { metrics: metricNames(ROOT), anchors: anchors(text), sections: alertSections(text) };
}

// ---------------------------------------------------------------- PromQL --

// The metric names a PromQL expression (or a Grafana query) selects.
function promqlMetrics(expr) {
    const s = String(expr)
        .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""') // strings
        .replace(/\$\{?\w+\}?/g, '') // Grafana variables
        .replace(/\{[^}]*\}/g, '') // label matchers
        .replace(/\[[^\]]*\]/g, '') // ranges
        .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
        .replace(/\boffset\s+-?\d+[a-z]+/g, '')
        .replace(/(?<![\w:])\d+(\.\d+)?(e[+-]?\d+)?/gi, '');
    const out = new Set();
    const tok = /[A-Za-z_:][A-Za-z0-9_:]*/g;
    let m;
    while ((m = tok.exec(s))) {
        const rest = s.slice(m.index + m[0].length);
        if (/^\s*\(/.test(rest)) continue; // a function or an aggregation
        if (KEYWORDS.has(m[0].toLowerCase())) continue;
        out.add(m[0]);
    }
    return out;
}

function unknownMetrics(expr, metrics) {
    const bad = [];
    for (const name of promqlMetrics(expr)) {
        if (metrics.has(name) || EXTERNAL[name]) continue;
        const h = /^(.*)_(bucket|sum|count)$/.exec(name);
        if (h && metrics.get(h[1]) === 'histogram') continue;
        bad.push(name);
    }
    return bad;
}

function balanced(expr) {
    let depth = 0;
    for (const ch of String(expr).replace(/"(?:[^"\\]|\\.)*"/g, '')) {
        if (ch === '(') depth++;
        if (ch === ')' && --depth < 0) return false;
    }
    return depth === 0;
}

// ----------------------------------------------------------------- checks --

function checkRule(obj, ctx) {
    const f = [];
    if (obj.apiVersion !== 'monitoring.coreos.com/v1') f.push(`apiVersion ${obj.apiVersion}`);
    if (obj.kind !== 'PrometheusRule') f.push(`kind ${obj.kind}`);
    if (!obj.metadata || !obj.metadata.name) f.push('metadata.name missing');
    const groups = (obj.spec || {}).groups;
    if (!Array.isArray(groups) || !groups.length) return f.concat('spec.groups: none');
    const groupNames = new Set();
    const alerts = new Set();
    for (const g of groups) {
        if (!g || !g.name) f.push('a group without a name');
        else if (groupNames.has(g.name)) f.push(`group ${g.name} twice`);
        else groupNames.add(g.name);
        if (!Array.isArray(g.rules) || !g.rules.length) {
            f.push(`group ${g.name}: no rules`);
            continue;
        }
        for (const r of g.rules) {
            const what = `${g.name}/${r.alert || r.record || '?'}`;
            if (!!r.alert === !!r.record) f.push(`${what}: exactly one of alert and record`);
            if (typeof r.expr !== 'string' || !r.expr.trim()) {
                f.push(`${what}: expr missing`);
                continue;
            }
            if (!balanced(r.expr)) f.push(`${what}: unbalanced parentheses in expr`);
            if (!promqlMetrics(r.expr).size) f.push(`${what}: expr selects no metric`);
            for (const name of unknownMetrics(r.expr, ctx.metrics))
                f.push(`${what}: expr uses ${name}, which no service exports (nor EXTERNAL)`);
            if (r.record) continue;
            if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(r.alert)) f.push(`${what}: bad alert name`);
            if (alerts.has(r.alert)) f.push(`${what}: alert named twice`);
            alerts.add(r.alert);
            if (r.for !== undefined && !/^([0-9]+(ms|s|m|h|d|w|y))+$/.test(String(r.for)))
                f.push(`${what}: for "${r.for}" is not a duration`);
            const labels = r.labels || {};
            if (!SEVERITIES.includes(labels.severity))
                f.push(`${what}: labels.severity must be one of ${SEVERITIES.join(', ')}`);
            const ann = r.annotations || {};
            for (const k of ['summary', 'description'])
                if (!ann[k] || !String(ann[k]).trim()) f.push(`${what}: annotations.${k} missing`);
            const rb = RUNBOOK.exec(String(ann.runbook_url || ''));
            if (!rb) f.push(`${what}: runbook_url must point at docs/operations.md#<section>`);
            else if (!ctx.anchors.has(rb[1]))
                f.push(`${what}: runbook_url #${rb[1]}: no section of docs/operations.md`);
            else if (rb[1] !== r.alert.toLowerCase())
                f.push(`${what}: runbook_url #${rb[1]} is not the alert's own section`);
        }
    }
    for (const s of ctx.sections)
        if (!alerts.has(s)) f.push(`docs/operations.md describes ${s}, which no rule defines`);
    return f;
}

function checkDashboard(cm, ctx) {
    const f = [];
    if (cm.kind !== 'ConfigMap') f.push(`kind ${cm.kind}`);
    if (((cm.metadata || {}).labels || {}).grafana_dashboard !== '1')
        f.push('label grafana_dashboard: "1" missing (Grafana\'s sidecar loads by it)');
    const files = Object.keys(cm.data || {}).filter(k => k.endsWith('.json'));
    if (files.length !== 1) return f.concat(`expected one .json in data, found ${files.length}`);
    let dash;
    try {
        dash = JSON.parse(cm.data[files[0]]);
    } catch (e) {
        return f.concat(`${files[0]} does not parse: ${e.message}`);
    }
    if (!dash.title) f.push('the dashboard has no title');
    if (!dash.uid) f.push('the dashboard has no uid');
    const panels = (dash.panels || []).flatMap(p => [p, ...(p.panels || [])]);
    const graphs = panels.filter(p => p.type !== 'row');
    if (!graphs.length) return f.concat('the dashboard has no panels');
    const ids = new Set();
    for (const p of panels) {
        const what = `panel "${p.title || p.id}"`;
        if (ids.has(p.id)) f.push(`${what}: id ${p.id} twice`);
        ids.add(p.id);
        const g = p.gridPos || {};
        if (!['h', 'w', 'x', 'y'].every(k => Number.isInteger(g[k]))) f.push(`${what}: gridPos`);
        if (p.type === 'row') continue;
        if (!p.title) f.push(`panel ${p.id}: no title`);
        const targets = p.targets || [];
        if (!targets.length) f.push(`${what}: no queries`);
        for (const t of targets) {
            if (!t.expr || !String(t.expr).trim()) {
                f.push(`${what}: a query without expr`);
                continue;
            }
            if (!balanced(t.expr)) f.push(`${what}: unbalanced parentheses in ${t.expr}`);
            for (const name of unknownMetrics(t.expr, ctx.metrics))
                f.push(`${what}: uses ${name}, which no service exports (nor EXTERNAL)`);
        }
    }
    return f;
}

// -------------------------------------------------------------- self-test --

const clone = o => JSON.parse(JSON.stringify(o));
const firstAlert = r => r.spec.groups[0].rules[0];
const alertNamed = (r, name) =>
    r.spec.groups.flatMap(g => g.rules).find(x => x.alert === name) || firstAlert(r);
const dashJson = cm => JSON.parse(cm.data[Object.keys(cm.data)[0]]);
const setDash = (cm, d) => {
    cm.data[Object.keys(cm.data)[0]] = JSON.stringify(d);
};

// [what, the finding it must cause, how to break the rule or the dashboard]
const BREAKS = [
    ['a metric renamed', 'patron_ingest_reset_total', (r) => {
        const a = alertNamed(r, 'PatronIngestResetting');
        a.expr = a.expr.replace('patron_ingest_resets_total', 'patron_ingest_reset_total');
    }],
    ['an external metric misspelled', 'kafka_consumergroup_lag_summ', (r) => {
        const a = alertNamed(r, 'PatronConsumerLagGrowing');
        a.expr = a.expr.replace(/kafka_consumergroup_lag_sum/g, 'kafka_consumergroup_lag_summ');
    }],
    ['a counter read as a histogram', 'patron_ingest_resets_total_bucket', (r) => {
        firstAlert(r).expr = 'sum(rate(patron_ingest_resets_total_bucket[5m])) > 0';
    }],
    ['no runbook', 'runbook_url', (r) => { delete firstAlert(r).annotations.runbook_url; }],
    ['a runbook to nowhere', 'no section', (r) => {
        firstAlert(r).annotations.runbook_url = 'docs/operations.md#nowhere';
    }],
    ['a runbook elsewhere', 'runbook_url must point', (r) => {
        firstAlert(r).annotations.runbook_url = 'https://example.com/wiki';
    }],
    ['no severity', 'severity', (r) => { delete firstAlert(r).labels.severity; }],
    ['no summary', 'annotations.summary', (r) => { delete firstAlert(r).annotations.summary; }],
    ['a bad duration', 'is not a duration', (r) => { firstAlert(r).for = '10 minutes'; }],
    ['an empty expr', 'expr missing', (r) => { firstAlert(r).expr = ' '; }],
    ['unbalanced', 'unbalanced', (r) => { firstAlert(r).expr += ')'; }],
    ['an alert twice', 'alert named twice', (r) => {
        r.spec.groups[0].rules.push(clone(firstAlert(r)));
    }],
    ['no groups', 'spec.groups', (r) => { r.spec.groups = []; }],
    ['another apiVersion', 'apiVersion', (r) => { r.apiVersion = 'monitoring.coreos.com/v2'; }],
    ['an alert the runbook describes, dropped', 'which no rule defines', (r) => {
        for (const g of r.spec.groups) g.rules = g.rules.filter(x => x.alert !== 'PatronNotReady');
    }],
    ['dashboard JSON broken', 'does not parse', (r, d) => {
        const k = Object.keys(d.data)[0];
        d.data[k] = d.data[k].slice(0, -3);
    }],
    ['dashboard without panels', 'no panels', (r, d) => {
        const j = dashJson(d);
        j.panels = [];
        setDash(d, j);
    }],
    ['a panel on a metric the code lacks', 'patron_nonesuch_total', (r, d) => {
        const j = dashJson(d);
        j.panels.find(p => p.type !== 'row').targets[0].expr = 'rate(patron_nonesuch_total[5m])';
        setDash(d, j);
    }],
    ['a panel without queries', 'no queries', (r, d) => {
        const j = dashJson(d);
        j.panels.find(p => p.type !== 'row').targets = [];
        setDash(d, j);
    }],
    ['the sidecar label missing', 'grafana_dashboard', (r, d) => {
        delete d.metadata.labels.grafana_dashboard;
    }],
];

function findings(rule, dash, ctx) {
    return [...checkRule(rule, ctx), ...checkDashboard(dash, ctx)];
}

function selfTest(rule, dash, ctx) {
    let passed = 0;
    let failed = 0;
    const base = findings(rule, dash, ctx);
    if (base.length) {
        console.error(`self-test: the unbroken files have findings:\n  ${base.join('\n  ')}`);
        return 1;
    }
    if (promqlMetrics('sum by (le) (rate(a_b{c="d(e"}[5m] offset 1h)) > 1e3 and on(x) b').size !== 2)
        failed++, console.error('self-test: the PromQL name reader is wrong');
    for (const [what, want, breakIt] of BREAKS) {
        const r = clone(rule);
        const d = clone(dash);
        breakIt(r, d);
        const f = findings(r, d, ctx);
        if (f.some(x => x.includes(want))) passed++;
        else {
            failed++;
            console.error(`self-test: "${what}" not caught (wanted "${want}"): ${JSON.stringify(f)}`);
        }
    }
    console.log(`monitoring self-test: ${passed} passed, ${failed} failed`);
    return failed ? 1 : 0;
}

// ------------------------------------------------------------------- main --

function loadAll(files) {
    const docs = [];
    for (const file of files)
        for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'))) {
            if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0].message}`);
            const js = doc.toJS();
            if (js) docs.push(js);
        }
    return docs;
}

function main(argv) {
    const self = argv[0] === '--monitoring-self-test';
    let ops;
    const files = [];
    for (const a of argv.slice(1)) {
        if (a.startsWith('--operations=')) ops = a.slice('--operations='.length);
        else files.push(a);
    }
    const ctx = context(ops);
    const docs = loadAll(files);
    const rules = docs.filter(d => d.kind === 'PrometheusRule');
    const dashes = docs.filter(d => d.kind === 'ConfigMap');
    if (rules.length !== 1 || dashes.length !== 1)
        throw new Error(`expected one PrometheusRule and one ConfigMap, got ${rules.length}, ${dashes.length}`);
    if (self) return selfTest(rules[0], dashes[0], ctx);
    const f = findings(rules[0], dashes[0], ctx);
    for (const x of f) console.error(x);
    const n = rules[0].spec.groups.reduce((s, g) => s + g.rules.length, 0);
    console.log(`monitoring: ${n} rules, ${ctx.metrics.size} metrics in the code, ${f.length} findings`);
    return f.length ? 1 : 0;
}

module.exports = { checkRule, checkDashboard, context, promqlMetrics, metricNames, anchors, main };
