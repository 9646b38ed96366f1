// The challenge's request and checks under k6: `POST /process` with one JSON string, answered 200
// with exactly the five models' keys, each a label of its model's label set and a score > 0.
// Driven by solution/benchmarks/served (k6.py), which writes the texts and label sets and reads
// the summary back. Stock k6 only: the challenge's faker extension is not in the PyPI binary, so
// the texts come from a file (solution/benchmarks/load_texts.py).
//
// Environment: BASE_URL, TEXTS (JSON list of strings), LABELS (JSON {key: [labels]}), SUMMARY
// (where the JSON summary goes), MODE = closed | spike | health; closed and health (closed loops
// of GET /health): VUS, WARMUP_S, SECONDS; spike: START_RATE, MID_RATE, PEAK_RATE, STAGE_S,
// HOLD_S, MAX_VUS.
import http from 'k6/http';
import { check } from 'k6';
import { SharedArray } from 'k6/data';

const texts = new SharedArray('texts', () => JSON.parse(open(__ENV.TEXTS)));
const labelSets = JSON.parse(open(__ENV.LABELS));
const keys = Object.keys(labelSets).sort();
const url = `${__ENV.BASE_URL}/process`;
const params = { headers: { 'Content-Type': 'application/json' }, timeout: '60s' };

function closed() {
  const vus = parseInt(__ENV.VUS, 10);
  const warmup = parseFloat(__ENV.WARMUP_S); // k6 takes no scenario shorter than 1 s
  const measure = { executor: 'constant-vus', vus, duration: `${__ENV.SECONDS}s` };
  if (warmup < 1) return { measure };
  return {
    // its answers are left out of the figures: connections opened, graphs and caches warm
    warmup: { executor: 'constant-vus', vus, duration: `${warmup}s` },
    measure: { ...measure, startTime: `${warmup}s` },
  };
}

function spike() {
  const stage = `${__ENV.STAGE_S}s`;
  const peak = parseFloat(__ENV.PEAK_RATE);
  return {
    measure: {
      executor: 'ramping-arrival-rate',
      startRate: parseFloat(__ENV.START_RATE),
      timeUnit: '1s',
      preAllocatedVUs: parseInt(__ENV.MAX_VUS, 10),
      maxVUs: parseInt(__ENV.MAX_VUS, 10),
      stages: [
        { duration: stage, target: parseFloat(__ENV.MID_RATE) },
        { duration: stage, target: peak },
        { duration: `${__ENV.HOLD_S}s`, target: peak },
      ],
    },
  };
}

export const options = {
  scenarios: __ENV.MODE === 'spike' ? spike() : closed(),
  // thresholds that always hold: they make k6 report the measured scenario's own submetrics
  thresholds: {
    'http_req_duration{scenario:measure}': ['max>=0'],
    'http_reqs{scenario:measure}': ['count>=0'],
    'checks{scenario:measure}': ['rate>=0'],
    'http_req_failed{scenario:measure}': ['rate>=0'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
  discardResponseBodies: false,
};

function fiveValidResults(r) {
  let body;
  try {
    body = r.json();
  } catch (e) {
    return false;
  }
  if (body === null || typeof body !== 'object') return false;
  const got = Object.keys(body).sort();
  if (got.length !== keys.length || got.some((k, i) => k !== keys[i])) return false;
  return keys.every((k) => {
    const p = body[k];
    return p && typeof p.score === 'number' && p.score > 0 && labelSets[k].includes(p.label);
  });
}

function health() {
  // MODE=health: GET /health, the client's and the HTTP layer's own round trip (no engine)
  const r = http.get(`${__ENV.BASE_URL}/health`);
  check(r, { 'status is 200': (res) => res.status === 200 });
}

export default function () {
  if (__ENV.MODE === 'health') return health();
  const text = texts[(__VU * 7919 + __ITER) % texts.length];
  const r = http.post(url, JSON.stringify(text), params);
  check(r, {
    'status is 200': (res) => res.status === 200,
    'five results, each a label of its model and a score > 0': (res) => fiveValidResults(res),
  });
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY]: JSON.stringify(data) };
}
