// One k6 scenario, described by environment variables (bench/platform_bench.py sets them):
//   TARGET_URL   the URL; "{room}" becomes this VU's room id, "{start}"/"{end}" a 30-minute slot
//                of its own (no two iterations of any VU ask for the same slot of the same room)
//   METHOD       GET or POST;  BODY  a JSON template (same placeholders), for POST
//   TOKENS_FILE  a file of bearer tokens, one a line: VU v's iteration i uses token (v-1 + VUS*i) mod their number,
//                so with VUS tokens each VU keeps its own, with k*VUS each VU takes its own k in turn
//   ROOMS        comma-separated room ids, one per VU (round robin)
//   BASE_EPOCH_MS the first slot's start;  EXPECT  comma-separated acceptable statuses
import http from 'k6/http';
import { check } from 'k6';

const tokens = (__ENV.TOKENS_FILE ? open(__ENV.TOKENS_FILE) : '').split('\n').filter((t) => t);
const rooms = (__ENV.ROOMS || '').split(',').filter((r) => r);
const expected = (__ENV.EXPECT || '200').split(',').map((s) => parseInt(s, 10));
const base = parseInt(__ENV.BASE_EPOCH_MS || '0', 10);
const slotMs = 30 * 60 * 1000;

function fill(template) {
  const room = rooms.length ? rooms[(__VU - 1) % rooms.length] : '';
  // VUs beyond the number of rooms share a room: interleave their slots.
  const lane = rooms.length ? Math.floor((__VU - 1) / rooms.length) : 0;
  const lanes = rooms.length ? Math.ceil(parseInt(__ENV.VUS || '1', 10) / rooms.length) : 1;
  const start = new Date(base + (__ITER * lanes + lane) * slotMs);
  const end = new Date(start.getTime() + slotMs);
  return template.replaceAll('{room}', room).replaceAll('{start}', start.toISOString()).replaceAll('{end}', end.toISOString());
}

export default function () {
  const headers = { 'Content-Type': 'application/json' };
  if (tokens.length) {
    const vus = parseInt(__ENV.VUS || '1', 10);
    headers.Authorization = `Bearer ${tokens[(__VU - 1 + vus * __ITER) % tokens.length]}`;
  }
  const url = fill(__ENV.TARGET_URL);
  const response = __ENV.METHOD === 'POST'
    ? http.post(url, fill(__ENV.BODY || '{}'), { headers })
    : http.get(url, { headers });
  check(response, { 'expected status': (r) => expected.includes(r.status) });
}
