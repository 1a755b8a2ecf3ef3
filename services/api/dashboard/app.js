/*
 * Patron's dashboard: reads the API's JSON every 5 s and draws it.
 *
 * No framework and no network beyond the API's endpoints. Every number
 * a test checks is an element with data-testid="<what>-<campaign>[-<variant>]"
 * (or "<what>-<name>"), its text formatted for people and its data-value the
 * JSON value as the API gave it. Data is always put in with textContent or
 * attributes, never parsed as HTML.
 */
'use strict';

(function () {
  const REFRESH_MS = 5000;
  const SVG = 'http://www.w3.org/2000/svg';
  const REASONS = [
    ['consent', 'consent'],
    ['audience', 'audience'],
    ['control_group', 'control group'],
    ['cooldown', 'cooldown'],
    ['frequency_cap', 'frequency cap'],
  ];
  // best first, as marketing reads them
  const SEGMENTS = ['champion', 'loyal', 'promising', 'new', 'needs_attention', 'at_risk',
    'hibernating', 'lost'];
  const TIERS = ['silver', 'gold', 'platinum'];

  const intFmt = new Intl.NumberFormat('en-GB', { maximumFractionDigits: 0 });
  const moneyFmt = new Intl.NumberFormat('en-GB', { minimumFractionDigits: 2, maximumFractionDigits: 2 });

  function fmtInt(n) { return intFmt.format(n); }
  function fmtMoney(cents) { return moneyFmt.format(cents / 100); }
  function fmtRate(r) { return r === null ? '–' : (100 * r).toFixed(2) + '%'; }
  function fmtPp(d) {
    if (d === null) return '–';
    const v = (100 * d).toFixed(2);
    return (d > 0 ? '+' : '') + v + ' pp';
  }
  function fmtTime(ms) {
    if (!ms) return '–';
    return new Date(ms).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
  }

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children || []) e.append(c);
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // A number a test reads: the text for people, data-value for machines.
  function num(testid, value, text, cls) {
    return el('span', {
      class: 'num' + (cls ? ' ' + cls : ''),
      'data-testid': testid,
      'data-value': value === null ? 'null' : String(value),
      text: text,
    });
  }

  function setNum(node, value, text) {
    node.dataset.value = value === null ? 'null' : String(value);
    node.textContent = text;
  }

  // ---- campaigns -------------------------------------------------------------

  function campaignKey(c) {
    return c.campaign_id + (c.variant ? '-' + c.variant : '');
  }

  // One horizontal bar, 0..max, as an SVG the width of its cell.
  function bar(parts, max) {
    const s = svg('svg', { class: 'bar', viewBox: '0 0 1000 14', preserveAspectRatio: 'none',
      'aria-hidden': 'true' });
    s.append(svg('rect', { class: 'track', x: 0, y: 0, width: 1000, height: 14, rx: 2 }));
    let x = 0;
    for (const [value, cls] of parts) {
      const w = max > 0 ? (1000 * value) / max : 0;
      if (w > 0) s.append(svg('rect', { class: cls, x: x, y: 0, width: w, height: 14 }));
      x += w;
    }
    return s;
  }

  function funnelRow(label, parts, max, numNode) {
    return el('div', { class: 'frow' }, [
      el('span', { class: 'flabel', text: label }), bar(parts, max), numNode,
    ]);
  }

  // The uplift's 95% interval on an axis that always shows zero.
  function intervalChart(c) {
    const s = svg('svg', { class: 'interval', viewBox: '0 0 300 50', role: 'img' });
    if (c.uplift === null) {
      s.append(svg('text', { x: 150, y: 22, 'text-anchor': 'middle', class: 'muted' },
        'no control group to compare with yet'));
      return s;
    }
    const [lo, hi] = c.uplift_ci95 || [c.uplift, c.uplift];
    const span = Math.max(Math.abs(lo), Math.abs(hi), Math.abs(c.uplift), 0.001) * 1.15;
    const x = (v) => 150 + (140 * v) / span;
    s.append(svg('title', {}, 'uplift ' + fmtPp(c.uplift) + ', 95% interval ' + fmtPp(lo) + ' to ' + fmtPp(hi)));
    s.append(svg('line', { class: 'axis', x1: 10, x2: 290, y1: 18, y2: 18 }));
    s.append(svg('line', { class: 'zero', x1: 150, x2: 150, y1: 4, y2: 32 }));
    const cls = lo > 0 ? 'good' : hi < 0 ? 'bad' : 'flat';
    s.append(svg('line', { class: 'ci ' + cls, x1: x(lo), x2: x(hi), y1: 18, y2: 18 }));
    s.append(svg('circle', { class: 'pt ' + cls, cx: x(c.uplift), cy: 18, r: 5 }));
    s.append(svg('text', { class: 'tick', x: 150, y: 46, 'text-anchor': 'middle' }, '0'));
    s.append(svg('text', { class: 'tick', x: 10, y: 46, 'text-anchor': 'start' }, fmtPp(-span)));
    s.append(svg('text', { class: 'tick', x: 290, y: 46, 'text-anchor': 'end' }, fmtPp(span)));
    return s;
  }

  function verdict(c) {
    if (c.uplift === null) return ['', ''];
    if (!c.uplift_ci95) return ['uncertain', 'flat'];
    if (c.uplift_ci95[0] > 0) return ['better than no message', 'good'];
    if (c.uplift_ci95[1] < 0) return ['worse than no message', 'bad'];
    return ['not distinguishable from no message', 'flat'];
  }

  function campaignCard(c) {
    const k = campaignKey(c);
    const max = Math.max(c.eligible, 1);
    const suppressedTotal = REASONS.reduce((n, [r]) => n + c.suppressed[r], 0);
    const title = el('h3', {}, [
      el('span', { class: 'cid', text: c.campaign_id }),
      c.variant ? el('span', { class: 'variant', text: 'variant ' + c.variant }) : '',
    ]);

    const funnel = el('div', { class: 'funnel' }, [
      funnelRow('eligible', [[c.eligible, 'eligible']], max,
        num('eligible-' + k, c.eligible, fmtInt(c.eligible))),
      funnelRow('sent', [[c.sent, 'sent']], max, num('sent-' + k, c.sent, fmtInt(c.sent))),
      funnelRow('suppressed', REASONS.map(([r]) => [c.suppressed[r], 'r-' + r]), max,
        num('suppressed-' + k, suppressedTotal, fmtInt(suppressedTotal))),
      funnelRow('exited', [[c.exited, 'exited']], max,
        num('exited-' + k, c.exited, fmtInt(c.exited))),
      funnelRow('converted', [[c.conversions, 'converted']], max,
        num('conversions-' + k, c.conversions, fmtInt(c.conversions))),
    ]);

    const reasons = el('ul', { class: 'reasons' }, REASONS.map(([r, label]) =>
      el('li', {}, [
        el('i', { class: 'sw r-' + r }), label + ' ',
        num('suppressed-' + r + '-' + k, c.suppressed[r], fmtInt(c.suppressed[r])),
      ])));

    const [vtext, vcls] = verdict(c);
    const ci = c.uplift_ci95;
    const kpis = el('dl', { class: 'kpis' }, [
      el('div', {}, [el('dt', { text: 'revenue' }),
        el('dd', {}, [num('revenue-' + k, c.revenue_cents, fmtMoney(c.revenue_cents))])]),
      el('div', {}, [el('dt', { text: 'rate, sent' }),
        el('dd', {}, [num('rate-' + k, c.conversion_rate, fmtRate(c.conversion_rate))])]),
      el('div', {}, [el('dt', { text: 'rate, control' }),
        el('dd', {}, [num('control-rate-' + k, c.control.conversion_rate,
          fmtRate(c.control.conversion_rate))])]),
      el('div', {}, [el('dt', { text: 'uplift' }),
        el('dd', {}, [num('uplift-' + k, c.uplift, fmtPp(c.uplift), vcls)])]),
    ]);

    const control = el('p', { class: 'control' }, [
      'Control group: would have sent ',
      num('control-sent-' + k, c.control.would_have_sent, fmtInt(c.control.would_have_sent)),
      ', converted ',
      num('control-conversions-' + k, c.control.conversions, fmtInt(c.control.conversions)),
      ', revenue ',
      num('control-revenue-' + k, c.control.revenue_cents, fmtMoney(c.control.revenue_cents)),
      '.',
    ]);

    const interval = el('div', { class: 'uplift' }, [
      intervalChart(c),
      el('p', { class: 'ci-text' }, [
        '95% interval ',
        num('uplift-lo-' + k, ci ? ci[0] : null, ci ? fmtPp(ci[0]) : '–'),
        ' to ',
        num('uplift-hi-' + k, ci ? ci[1] : null, ci ? fmtPp(ci[1]) : '–'),
        vtext ? el('span', { class: 'verdict ' + vcls, text: ' · ' + vtext }) : '',
      ]),
    ]);

    return el('article', {
      class: 'card', 'data-campaign': c.campaign_id, 'data-variant': c.variant,
    }, [title, funnel, reasons, kpis, interval, control]);
  }

  function renderLegend() {
    const box = document.getElementById('legend');
    if (box.childElementCount) return;
    for (const [cls, label] of [['sent', 'sent'], ['exited', 'exited'], ['converted', 'converted']]
      .concat(REASONS.map(([r, l]) => ['r-' + r, 'suppressed: ' + l]))) {
      box.append(el('span', {}, [el('i', { class: 'sw ' + cls }), label]));
    }
  }

  // Across every campaign and variant: what marketing reads first.
  function renderTotals(stats) {
    const sum = (f) => stats.campaigns.reduce((n, c) => n + f(c), 0);
    const tiles = [
      ['total-eligible', 'decisions', sum((c) => c.eligible), fmtInt],
      ['total-sent', 'messages sent', sum((c) => c.sent), fmtInt],
      ['total-suppressed', 'suppressed', sum((c) => REASONS.reduce((n, [r]) => n + c.suppressed[r], 0)), fmtInt],
      ['total-conversions', 'conversions', sum((c) => c.conversions), fmtInt],
      ['total-revenue', 'revenue from sends', sum((c) => c.revenue_cents), fmtMoney],
    ];
    document.getElementById('totals').replaceChildren(...tiles.map(([id, label, v, f]) =>
      el('div', { class: 'tile' }, [num(id, v, f(v)), el('span', { text: label })])));
  }

  function renderCampaigns(stats) {
    renderLegend();
    renderTotals(stats);
    const box = document.getElementById('campaigns');
    box.replaceChildren(...stats.campaigns.map(campaignCard));
    document.getElementById('campaigns-empty').hidden = stats.campaigns.length > 0;
    setNum(document.getElementById('as-of'), stats.as_of_ms, fmtTime(stats.as_of_ms));
  }

  // ---- customers -------------------------------------------------------------

  // Horizontal bars with the name on the left and the count on the right.
  function barChart(rows, what, total) {
    const rowH = 26, labelW = 140, barW = 300, width = labelW + barW + 80;
    const s = svg('svg', { class: 'hbars', viewBox: `0 0 ${width} ${rows.length * rowH}`,
      role: 'img', 'aria-label': what + ' distribution' });
    const max = Math.max(1, ...rows.map((r) => r.value));
    rows.forEach((r, i) => {
      const y = i * rowH;
      const share = total > 0 ? ' (' + ((100 * r.value) / total).toFixed(1) + '%)' : '';
      s.append(svg('text', { x: labelW - 8, y: y + 17, 'text-anchor': 'end', class: 'lbl' },
        r.name.replace('_', ' ')));
      s.append(svg('rect', { class: 'track', x: labelW, y: y + 5, width: barW, height: 16, rx: 2 }));
      s.append(svg('rect', { class: what + ' ' + what + '-' + r.name, x: labelW, y: y + 5,
        width: (barW * r.value) / max, height: 16, rx: 2 }));
      const t = svg('text', { x: labelW + barW + 6, y: y + 17, class: 'val',
        'data-testid': what + '-' + r.name, 'data-value': String(r.value) }, fmtInt(r.value));
      s.append(t);
      s.append(svg('title', {}, r.name + ': ' + fmtInt(r.value) + share));
    });
    return s;
  }

  function renderCustomers(cu) {
    const total = document.querySelector('[data-testid="customers-total"]');
    setNum(total, cu.customers, fmtInt(cu.customers));
    setNum(document.querySelector('[data-testid="customers-as-of"]'), cu.as_of_ms, fmtTime(cu.as_of_ms));
    const tr = document.getElementById('truncated');
    tr.dataset.value = String(cu.truncated);
    tr.hidden = !cu.truncated;
    const segs = SEGMENTS.filter((s) => s in cu.segments)
      .concat(Object.keys(cu.segments).filter((s) => !SEGMENTS.includes(s)).sort());
    document.getElementById('segments').replaceChildren(
      barChart(segs.map((s) => ({ name: s, value: cu.segments[s] })), 'segment', cu.customers));
    const tiers = TIERS.filter((t) => t in cu.tiers);
    document.getElementById('tiers').replaceChildren(
      barChart(tiers.map((t) => ({ name: t, value: cu.tiers[t] })), 'tier', cu.customers));
  }

  // ---- recommended items -----------------------------------------------------

  function renderRecommended(reco) {
    const max = Math.max(1, ...reco.items.map((i) => i.count));
    const rows = reco.items.map((it, i) => el('tr', {}, [
      el('td', { class: 'rank', text: String(i + 1) }),
      el('td', {}, [num('reco-item-' + i, it.item_id, it.item_id, 'id')]),
      el('td', { class: 'title', text: it.title === null ? '' : it.title }),
      el('td', { class: 'r' }, [num('reco-price-' + i, it.price_cents,
        it.price_cents === null ? '–' : fmtMoney(it.price_cents))]),
      el('td', { class: 'count' }, [bar([[it.count, 'rbar']], max),
        num('reco-count-' + i, it.count, fmtInt(it.count))]),
    ]));
    document.getElementById('reco').replaceChildren(...rows);
    document.getElementById('reco-empty').hidden = rows.length > 0;
  }

  // ---- campaigns by day -------------------------------------------------------

  const DAILY_DAYS = [30, 90, 365];
  let dailyDays = 90;

  function dailyPath() {
    return '/v1/campaigns/daily?days=' + dailyDays;
  }

  // A point a test reads: its testid and data-value, and a <title> whose text
  // starts with the value formatted for people.
  function plotted(tag, attrs, testid, value, text) {
    const e = svg(tag, Object.assign({ 'data-testid': testid, 'data-value': String(value) }, attrs));
    e.append(svg('title', {}, text));
    return e;
  }

  // Sent and converted as bars, revenue as a line on its own scale.
  function dailyChart(c) {
    const n = c.days.length, w = 640, h = 130, top = 14, bottom = 18, left = 34, right = 56;
    const plotH = h - top - bottom, step = (w - left - right) / Math.max(n, 1);
    const maxN = Math.max(1, ...c.days.map((d) => d.sent));
    const maxR = Math.max(1, ...c.days.map((d) => d.revenue_cents));
    const y = (v) => top + plotH - (plotH * v) / maxN;
    const yr = (v) => top + plotH - (plotH * v) / maxR;
    const s = svg('svg', { class: 'daily', viewBox: `0 0 ${w} ${h}`, role: 'img',
      'aria-label': c.campaign_id + ' by day' });
    s.append(svg('line', { class: 'axis', x1: left, x2: w - right, y1: top + plotH, y2: top + plotH }));
    s.append(svg('text', { class: 'tick', x: left - 4, y: top + 4, 'text-anchor': 'end' }, fmtInt(maxN)));
    s.append(svg('text', { class: 'tick', x: left - 4, y: top + plotH, 'text-anchor': 'end' }, '0'));
    s.append(svg('text', { class: 'tick rev', x: w - right + 4, y: top + 4 }, fmtMoney(maxR)));
    s.append(svg('text', { class: 'tick', x: left, y: h - 4 }, c.days[0].day));
    s.append(svg('text', { class: 'tick', x: w - right, y: h - 4, 'text-anchor': 'end' }, c.days[n - 1].day));
    const bw = Math.max(0.6, step * 0.8);
    let path = '';
    c.days.forEach((d, i) => {
      const x = left + i * step + (step - bw) / 2;
      s.append(plotted('rect', { class: 'sent', x: x, y: y(d.sent), width: bw, height: top + plotH - y(d.sent) },
        'daily-sent-' + c.campaign_id + '-' + d.day, d.sent, fmtInt(d.sent) + ' sent on ' + d.day));
      s.append(plotted('rect', { class: 'converted', x: x + bw * 0.25, y: y(d.conversions), width: bw * 0.5,
        height: top + plotH - y(d.conversions) },
      'daily-conversions-' + c.campaign_id + '-' + d.day, d.conversions,
      fmtInt(d.conversions) + ' converted on ' + d.day));
      const cx = left + (i + 0.5) * step, cy = yr(d.revenue_cents);
      path += (i ? ' L' : 'M') + cx.toFixed(1) + ' ' + cy.toFixed(1);
    });
    s.append(svg('path', { class: 'revline', d: path }));
    c.days.forEach((d, i) => {
      s.append(plotted('circle', { class: 'rev', cx: left + (i + 0.5) * step, cy: yr(d.revenue_cents), r: 1.6 },
        'daily-revenue-' + c.campaign_id + '-' + d.day, d.revenue_cents,
        fmtMoney(d.revenue_cents) + ' revenue on ' + d.day));
    });
    return s;
  }

  function renderDaily(daily) {
    setNum(document.querySelector('[data-testid="daily-from"]'), daily.from, daily.from);
    setNum(document.querySelector('[data-testid="daily-to"]'), daily.to, daily.to);
    document.getElementById('daily').replaceChildren(...daily.campaigns.map((c) =>
      el('figure', { class: 'multiple', 'data-campaign': c.campaign_id }, [
        el('figcaption', { class: 'cid', text: c.campaign_id }), dailyChart(c)])));
    document.getElementById('daily-empty').hidden = daily.campaigns.length > 0;
  }

  function watchDailyDays(onChange) {
    const sel = document.getElementById('daily-days');
    if (sel.dataset.bound) return;
    sel.dataset.bound = '1';
    sel.addEventListener('change', () => {
      const v = Number(sel.value);
      if (DAILY_DAYS.includes(v)) {
        dailyDays = v;
        onChange();
      }
    });
  }

  // ---- clusters --------------------------------------------------------------

  // GET /v1/segments/clusters answers 503 until the first fit: shown as none.
  async function getClusters() {
    try {
      return await getJSON('/v1/segments/clusters');
    } catch (e) {
      if (/HTTP 503$/.test(e.message)) return null;
      throw e;
    }
  }

  function renderClusters(cl) {
    const k = document.querySelector('[data-testid="clusters-k"]');
    const asOf = document.querySelector('[data-testid="clusters-as-of"]');
    const sil = document.querySelector('[data-testid="clusters-silhouette"]');
    const list = cl ? cl.clusters : [];
    if (cl) {
      setNum(k, cl.k, fmtInt(cl.k));
      setNum(asOf, cl.as_of_ms, fmtTime(cl.as_of_ms));
      setNum(sil, cl.silhouette, cl.silhouette === null ? '–' : cl.silhouette.toFixed(2));
    } else {
      for (const e of [k, asOf, sil]) { delete e.dataset.value; e.textContent = '–'; }
    }
    const max = Math.max(1, ...list.map((c) => c.size));
    const oneDec = (v) => v.toFixed(1);
    document.getElementById('clusters').replaceChildren(...list.map((c) => el('tr', {}, [
      el('td', { class: 'rank' }, [el('i', { class: 'sw k' + (c.id % 8) })]),
      el('td', {}, [num('cluster-label-' + c.id, c.label, c.label, 'label')]),
      el('td', { class: 'count' }, [bar([[c.size, 'kbar k' + (c.id % 8)]], max),
        num('cluster-size-' + c.id, c.size, fmtInt(c.size))]),
      el('td', { class: 'r' }, [num('cluster-recency-' + c.id, c.centroid.recency_days,
        oneDec(c.centroid.recency_days))]),
      el('td', { class: 'r' }, [num('cluster-orders-' + c.id, c.centroid.orders, oneDec(c.centroid.orders))]),
      el('td', { class: 'r' }, [num('cluster-spend-' + c.id, c.centroid.net_spend_cents,
        fmtMoney(c.centroid.net_spend_cents))]),
    ])));
    document.getElementById('clusters-empty').hidden = list.length > 0;
  }

  // ---- customers over time ---------------------------------------------------

  // One line per series over the recorded days, a point per value.
  function historyChart(days, series, what) {
    const w = 680, h = 170, top = 10, bottom = 18, left = 44, right = 200;
    const plotH = h - top - bottom, n = days.length;
    const x = (i) => left + (n > 1 ? ((w - left - right) * i) / (n - 1) : (w - left - right) / 2);
    const max = Math.max(1, ...series.flatMap((sr) => sr.values.filter((v) => v !== null)));
    const y = (v) => top + plotH - (plotH * v) / max;
    const s = svg('svg', { class: 'history', viewBox: `0 0 ${w} ${h}`, role: 'img',
      'aria-label': what + ' over time' });
    s.append(svg('line', { class: 'axis', x1: left, x2: w - right, y1: top + plotH, y2: top + plotH }));
    s.append(svg('text', { class: 'tick', x: left - 4, y: top + 4, 'text-anchor': 'end' }, fmtInt(max)));
    s.append(svg('text', { class: 'tick', x: left - 4, y: top + plotH, 'text-anchor': 'end' }, '0'));
    s.append(svg('text', { class: 'tick', x: left, y: h - 4 }, days[0].day));
    if (n > 1) s.append(svg('text', { class: 'tick', x: w - right, y: h - 4, 'text-anchor': 'end' }, days[n - 1].day));
    series.forEach((sr, k) => {
      let path = '';
      sr.values.forEach((v, i) => {
        if (v === null) return;
        path += (path ? ' L' : 'M') + x(i).toFixed(1) + ' ' + y(v).toFixed(1);
      });
      s.append(svg('path', { class: 'hline ' + sr.cls, d: path }));
      sr.values.forEach((v, i) => {
        if (v === null) return;
        s.append(plotted('circle', { class: 'hpt ' + sr.cls, cx: x(i), cy: y(v), r: 2.2 },
          'history-' + what + '-' + sr.key + '-' + days[i].day, v,
          fmtInt(v) + ' ' + sr.label + ' on ' + days[i].day));
      });
      s.append(svg('text', { class: 'lbl ' + sr.cls, x: w - right + 8, y: top + 10 + k * 15 }, sr.label));
    });
    return s;
  }

  function renderHistory(hist) {
    const days = hist.days;
    const boxes = ['segments', 'tiers', 'clusters'].map((b) => document.getElementById('history-' + b));
    document.getElementById('history-empty').hidden = days.length > 0;
    if (!days.length) {
      boxes.forEach((b) => b.replaceChildren());
      return;
    }
    const names = (key) => Object.keys(days[days.length - 1][key]);
    const segs = SEGMENTS.filter((sg) => names('segments').includes(sg));
    boxes[0].replaceChildren(historyChart(days, segs.map((sg, i) => ({
      key: sg, label: sg.replace('_', ' '), cls: 'k' + i, values: days.map((d) => d.segments[sg]),
    })), 'segment'));
    const tiers = TIERS.filter((t) => names('tiers').includes(t));
    boxes[1].replaceChildren(historyChart(days, tiers.map((t) => ({
      key: t, label: t, cls: 'tier-' + t, values: days.map((d) => d.tiers[t]),
    })), 'tier'));
    // clusters by id; a day without that id (another fit) has no point
    const ids = [...new Set(days.flatMap((d) => d.clusters.map((c) => c.id)))].sort((a, b) => a - b);
    const label = (id) => {
      for (let i = days.length - 1; i >= 0; i--) {
        const c = days[i].clusters.find((x) => x.id === id);
        if (c) return id + ' ' + c.label;
      }
      return String(id);
    };
    boxes[2].replaceChildren(ids.length ? historyChart(days, ids.map((id) => ({
      key: String(id), label: label(id), cls: 'k' + (id % 8),
      values: days.map((d) => { const c = d.clusters.find((x) => x.id === id); return c ? c.size : null; }),
    })), 'cluster') : el('p', { class: 'empty', text: 'No clusters fitted on these days.' }));
  }

  // What the time panels need, fetched beside the rest.
  function loadInsights() {
    return Promise.all([getJSON(dailyPath()), getJSON('/v1/dashboard/history'), getClusters()]);
  }

  function renderInsights([daily, hist, clusters]) {
    renderDaily(daily);
    renderHistory(hist);
    renderClusters(clusters);
  }

  // ---- refresh ---------------------------------------------------------------

  async function getJSON(path) {
    const r = await fetch(path, { cache: 'no-store', headers: { Accept: 'application/json' } });
    if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
    return r.json();
  }

  async function refresh() {
    const status = document.getElementById('status');
    try {
      const [stats, customers, reco, insights] = await Promise.all([
        getJSON('/v1/campaigns/stats'),
        getJSON('/v1/dashboard/customers'),
        getJSON('/v1/dashboard/recommended?limit=20'),
        loadInsights(),
      ]);
      renderCampaigns(stats);
      renderCustomers(customers);
      renderRecommended(reco);
      renderInsights(insights);
      status.dataset.state = 'ok';
      status.dataset.refreshes = String(Number(status.dataset.refreshes || 0) + 1);
      status.textContent = 'updated ' + new Date().toLocaleTimeString('en-GB');
    } catch (e) {
      // keep what is shown; say why it may be stale
      status.dataset.state = 'error';
      status.textContent = 'API unreachable (' + e.message + '), retrying';
    } finally {
      setTimeout(refresh, REFRESH_MS);
    }
  }

  watchDailyDays(() => loadInsights().then(renderInsights).catch(() => {}));
  refresh();
})();
