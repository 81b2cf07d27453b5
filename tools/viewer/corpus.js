// Parser of the atlas corpus file (DESIGN §6): u32 N, N little-endian rows of 62 bytes, then
// title, version and creator of each row as UTF-8. The same layout the osu! Beatmap Atlas
// frontend reads; shared by the viewer and its test.
"use strict";
const MODS = [[2, "EZ"], [1024, "FL"], [64, "DT"], [16, "HR"], [256, "HT"]];

function parseCorpus(buf) {
  const v = new DataView(buf);
  const n = v.getUint32(0, true);
  if (4 + 62 * n > buf.byteLength) throw new Error("corpus: row count larger than the file");
  const rows = {
    n, id: new Int32Array(n), mods: new Uint32Array(n), x: new Float32Array(n),
    y: new Float32Array(n), avg_pp: new Float32Array(n), stars: new Float32Array(n),
    year: new Uint16Array(n), length: new Uint16Array(n), bpm: new Uint16Array(n),
    ar: new Float32Array(n), cs: new Float32Array(n), od: new Float32Array(n),
    aim: new Float32Array(n), speed: new Float32Array(n), ratio: new Float32Array(n),
    set_id: new Uint32Array(n), num_users: new Uint16Array(n), title: new Array(n),
    version: new Array(n), creator: new Array(n),
  };
  const dec = new TextDecoder("utf-8");
  let s = 4 + 62 * n;
  for (let i = 0; i < n; i++) {
    const o = 4 + 62 * i;
    rows.id[i] = v.getInt32(o, true);
    rows.mods[i] = v.getUint32(o + 4, true);
    rows.x[i] = v.getFloat32(o + 8, true);
    rows.y[i] = v.getFloat32(o + 12, true);
    rows.avg_pp[i] = v.getFloat32(o + 16, true);
    rows.stars[i] = v.getFloat32(o + 20, true);
    const lt = v.getUint16(o + 24, true), lv = v.getUint16(o + 26, true);
    const lc = v.getUint16(o + 28, true);
    rows.year[i] = v.getUint16(o + 30, true);
    rows.length[i] = v.getUint16(o + 32, true);
    rows.bpm[i] = v.getUint16(o + 34, true);
    rows.ar[i] = v.getFloat32(o + 36, true);
    rows.cs[i] = v.getFloat32(o + 40, true);
    rows.od[i] = v.getFloat32(o + 44, true);
    rows.aim[i] = v.getFloat32(o + 48, true);
    rows.speed[i] = v.getFloat32(o + 52, true);
    rows.ratio[i] = rows.speed[i] > 0 ? rows.aim[i] / rows.speed[i] : 0; // the frontend's aimSpeedRatio
    rows.set_id[i] = v.getUint32(o + 56, true);
    rows.num_users[i] = v.getUint16(o + 60, true);
    if (s + lt + lv + lc > buf.byteLength) throw new Error("corpus: strings past the end");
    rows.title[i] = dec.decode(new Uint8Array(buf, s, lt)); s += lt;
    rows.version[i] = dec.decode(new Uint8Array(buf, s, lv)); s += lv;
    rows.creator[i] = dec.decode(new Uint8Array(buf, s, lc)); s += lc;
  }
  return rows;
}

// Mods as the frontend shows them (EZ FL DT HR HT).
function modString(bits) {
  return MODS.filter(([b]) => bits & b).map(([, m]) => m).join("");
}

// The daemon's item id (GET /items/<id>): beatmap id, "_", DT EZ FL HR HT in that order.
function itemId(beatmapId, bits) {
  const order = [[64, "DT"], [2, "EZ"], [1024, "FL"], [16, "HR"], [256, "HT"]];
  return beatmapId + "_" + order.filter(([b]) => bits & b).map(([, m]) => m).join("");
}
