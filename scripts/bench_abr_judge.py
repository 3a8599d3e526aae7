#!/usr/bin/env python3
"""Judge for scripts/bench-abr.sh: what a slow link did to each publisher, read from what
nginx-rtmp recorded (Python 3 stdlib + ffprobe/ffmpeg).

  bench_abr_judge.py judge --label L --events EV --sizes SZ --csv OUT.csv --json OUT.json
                           [--stats-json onair.jsonl] [--obs-log obs.log] [--note TEXT] REC.flv...
  bench_abr_judge.py table OUT1.json OUT2.json ...    # Markdown tables on stdout

Time axis. EV holds epoch seconds (key=value lines): t0 (nginx saw the publish: its recording
file appeared), throttle_on, throttle_off, stop, and launch (the publisher was started).
Every time below is seconds after t0.
- Content time: a packet's pts mapped to the wall clock. Each recording file (one per RTMP
  session) gets the offset min(arrival - pts) over its packets, i.e. its least-delayed
  packet is taken as sent live. Frames, freezes, video kbit/s and audio are counted on
  this axis: "what part of the live content reached the viewer".
- Arrival time: when the packet's bytes were in the recording. SZ holds "epoch path size"
  lines written every ~0.2 s while the runs go (nginx writes every frame as it arrives), so
  a packet arrived at the first sample where the file held pos+size bytes. Its delay
  (arrival - content time) shows a publisher that does not drop but falls behind live
  (the FFmpeg CLI blocks on the socket); "received kbit/s" counts bytes by arrival.
"""
import argparse
import bisect
import json
import math
import os
import re
import subprocess
import sys
from datetime import datetime, timezone

CEILING_KBPS = 2500
FPS = 30
JUDGED_AFTER = 10.0  # the judged span starts this long after the throttle starts
RECOVERY_WINDOW = 20.0


def read_events(path):
    ev = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.strip().split("=", 1)
                try:
                    ev[k] = float(v)
                except ValueError:
                    ev[k] = v
    return ev


def read_sizes(path, rec):
    """[(epoch, size)] for one recording file, sorted by time."""
    out = []
    name = os.path.basename(rec)
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and os.path.basename(parts[1]) == name:
                out.append((float(parts[0]), int(parts[2])))
    out.sort()
    return out


def probe(rec):
    """Streams (index -> codec_type, sample_rate) and packets of a recording."""
    cmd = ["ffprobe", "-v", "error", "-show_entries",
           "stream=index,codec_type,sample_rate:packet=stream_index,pts_time,flags,pos,size",
           "-of", "json", rec]
    data = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    streams = {s["index"]: s for s in data.get("streams", [])}
    pkts = []
    for p in data.get("packets", []):
        st = streams.get(p.get("stream_index"), {})
        if "pts_time" not in p:
            continue
        pkts.append({
            "type": st.get("codec_type"),
            "pts": float(p["pts_time"]),
            "key": "K" in p.get("flags", ""),
            "pos": int(p.get("pos", 0)),
            "size": int(p.get("size", 0)),
        })
    rates = [int(s["sample_rate"]) for s in streams.values()
             if s.get("codec_type") == "audio" and s.get("sample_rate")]
    return pkts, (rates[0] if rates else 48000)


def decode_check(rec):
    """(error lines, 'Frame num gap' lines): one decode at debug level with level tags, which
    holds both what `ffmpeg -v error` prints and the H.264 decoder's frame_num gap notes."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "level+debug", "-i", rec,
           "-f", "null", "-"]
    errors = gaps = 0
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, errors="replace") as p:
        for line in p.stderr:
            if re.search(r"\[(error|fatal|panic)\]", line):
                errors += 1
            if "Frame num gap" in line:
                gaps += 1
    return errors, gaps


def onair_stats(path, launch, t0):
    """Per-second onair stats mapped to the t0 axis, and the final object."""
    rows, final = [], None
    if not path or not os.path.exists(path):
        return rows, final
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                o = json.loads(line)
            except ValueError:
                continue
            o["_t"] = launch + o.get("t_ms", 0) / 1000.0 - t0
            rows.append(o)
            final = o
    return rows, final


OBS_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d\d\d): (.*)$")
OBS_DBR = re.compile(r"congestion detected|bitrate (increased|decreased|lowered) to|"
                     r"dropping bitrate|going back to (prev )?bitrate", re.I)
OBS_RECONNECT = re.compile(r"Reconnecting in", re.I)
OBS_NUM = re.compile(r"(\d+)\s*(kbps)?\s*(,|$)")


def obs_log(path, t0):
    """OBS's dynamic-bitrate and reconnect lines (times on the t0 axis; OBS runs with TZ=UTC)."""
    out = {"dbr": [], "reconnects": 0, "lines": [], "drops": None, "lagged": None}
    if not path or not os.path.exists(path):
        return out
    day = datetime.fromtimestamp(t0, timezone.utc).replace(hour=0, minute=0, second=0,
                                                           microsecond=0).timestamp()
    with open(path, errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\n")
            m = OBS_TIME.match(line)
            if not m:
                continue
            hh, mm, ss, ms, msg = m.groups()
            t = day + int(hh) * 3600 + int(mm) * 60 + int(ss) + int(ms) / 1000.0 - t0
            if OBS_DBR.search(msg):
                nums = re.findall(r"(\d+)", msg)
                kbps = int(nums[-1]) if nums else None
                out["dbr"].append((t, kbps, msg.strip()))
                out["lines"].append(line)
            elif "buffer_duration_msec" in msg:
                out["lines"].append(line)  # printed with each decrease: kept, not counted
            elif OBS_RECONNECT.search(msg):
                out["reconnects"] += 1
                out["lines"].append(line)
            if "Number of dropped frames due to insufficient bandwidth" in msg:
                out["drops"] = msg.rsplit(":", 1)[-1].strip()
                out["lines"].append(line)
            if "Number of lagged frames due to rendering lag" in msg:
                out["lagged"] = msg.rsplit(":", 1)[-1].strip()
                out["lines"].append(line)
    return out


def judge(a):
    ev = read_events(a.events)
    t0 = ev["t0"]
    on, off, stop = ev["throttle_on"] - t0, ev["throttle_off"] - t0, ev["stop"] - t0
    global CEILING_KBPS, FPS
    CEILING_KBPS = float(ev.get("ceiling_kbps", CEILING_KBPS))
    FPS = float(ev.get("fps", FPS))
    span0, span1 = on + float(ev.get("judged_after", JUDGED_AFTER)), off
    span = span1 - span0

    video, audio = [], []  # (content t, arrival t, size)
    files = []
    sample_rate = 48000
    errors = gaps = 0
    for rec in a.recs:
        pkts, sr = probe(rec)
        sizes = read_sizes(a.sizes, rec)
        times = [s[0] for s in sizes]
        bytes_ = [s[1] for s in sizes]
        # The running maximum makes the size list monotone for the search.
        for i in range(1, len(bytes_)):
            bytes_[i] = max(bytes_[i], bytes_[i - 1])
        last = (times[-1] - t0) if times else stop
        arr = []
        for p in pkts:
            end = p["pos"] + p["size"]
            i = bisect.bisect_left(bytes_, end)
            arr.append((times[i] - t0) if i < len(times) else last)
        off_file = min((at - p["pts"] for p, at in zip(pkts, arr)), default=0.0)
        for p, at in zip(pkts, arr):
            ct = p["pts"] + off_file
            if p["type"] == "video":
                video.append((ct, at, p["size"], p["key"]))
            elif p["type"] == "audio":
                audio.append((ct, at, p["size"]))
        if pkts:
            sample_rate = sr
        e, g = decode_check(rec)
        errors += e
        gaps += g
        files.append({"file": os.path.basename(rec), "packets": len(pkts),
                      "offset_s": round(off_file, 3), "errors": e, "frame_num_gaps": g})
    video.sort()
    audio.sort()
    vts = [v[0] for v in video]

    def frames_in(t_a, t_b):
        return bisect.bisect_left(vts, t_b) - bisect.bisect_left(vts, t_a)

    def vbytes_in(t_a, t_b):
        return sum(v[2] for v in video if t_a <= v[0] < t_b)

    def longest_freeze(t_a, t_b):
        """Largest step between consecutive frames, clipped to [t_a, t_b] (no frame at all
        in it: the whole span)."""
        i = bisect.bisect_left(vts, t_a)
        j = bisect.bisect_left(vts, t_b)
        pts = [t_a] + vts[i:j] + [t_b]
        return max(b - x for x, b in zip(pts, pts[1:]))

    first_v = vts[0] if vts else 0.0
    frames_span = frames_in(span0, span1)
    expected = FPS * span
    audio_span = sum(1 for x in audio if span0 <= x[0] < span1) * 1024 / sample_rate
    kbps_span = vbytes_in(span0, span1) * 8 / span / 1000
    recv_span = (sum(v[2] for v in video if on <= v[1] < off)
                 + sum(x[2] for x in audio if on <= x[1] < off)) * 8 / (off - on) / 1000
    base0 = min(max(first_v, 0.0) + 1.0, on)  # unthrottled reference, after the first keyframe
    frames_free = frames_in(base0, on) / (FPS * (on - base0)) if on > base0 else float("nan")
    delays = [v[1] - v[0] for v in video] + [x[1] - x[0] for x in audio]
    max_delay = max(delays, default=0.0)

    # Recovery: first 1 s content window at or after the link is freed whose video reaches
    # 80 % of the ceiling; recovered when that whole window has reached the server.
    recovery = None
    recovery_window = float(ev.get("recovery_window", RECOVERY_WINDOW))
    for k in range(int(recovery_window)):
        w0, w1 = off + k, off + k + 1
        if w1 > stop:
            break
        if vbytes_in(w0, w1) * 8 / 1000 >= 0.8 * CEILING_KBPS:
            arrived = max((v[1] for v in video if w0 <= v[0] < w1), default=w1)
            if arrived <= min(stop, off + recovery_window):
                recovery = max(w1, arrived) - off
            break

    stats_rows, final = onair_stats(a.stats_json, ev.get("launch", t0), t0)
    obs = obs_log(a.obs_log, t0)
    if a.stats_json:
        reconnects = int(final.get("reconnects", 0)) if final else None
        reconnect_src = "stats"
    elif a.obs_log:
        reconnects = obs["reconnects"]
        reconnect_src = "OBS log"
    else:
        reconnects = max(len(a.recs) - 1, 0)
        reconnect_src = "recordings"

    # Per-second timeline (CSV).
    n_sec = int(math.ceil(stop))
    cols = ["t_s", "phase", "video_frames", "video_kbps", "audio_s", "received_kbps",
            "max_delay_s", "keyframes"]
    extra = []
    if a.stats_json:
        extra = ["onair_state", "onair_kbps", "onair_video_bitrate_kbps", "onair_link_kbps",
                 "onair_congestion", "onair_buffer_ms", "onair_video_dropped_congestion",
                 "onair_audio_frames_dropped", "onair_reconnects"]
    if a.obs_log:
        extra = ["obs_dbr_bitrate_kbps"]
    per_sec = []
    vi = [[] for _ in range(n_sec)]
    ai = [[] for _ in range(n_sec)]
    ri = [0] * n_sec
    for v in video:
        k = int(math.floor(v[0]))
        if 0 <= k < n_sec:
            vi[k].append(v)
        k = int(math.floor(v[1]))
        if 0 <= k < n_sec:
            ri[k] += v[2]
    for x in audio:
        k = int(math.floor(x[0]))
        if 0 <= k < n_sec:
            ai[k].append(x)
        k = int(math.floor(x[1]))
        if 0 <= k < n_sec:
            ri[k] += x[2]
    dbr_now = round(CEILING_KBPS)
    with open(a.csv, "w") as f:
        f.write(",".join(cols + extra) + "\n")
        for k in range(n_sec):
            phase = "throttled" if on <= k < off else ("freed" if k >= off else "free")
            ds = [v[1] - v[0] for v in vi[k]] + [x[1] - x[0] for x in ai[k]]
            row = [k, phase, len(vi[k]), round(sum(v[2] for v in vi[k]) * 8 / 1000),
                   round(len(ai[k]) * 1024 / sample_rate, 3), round(ri[k] * 8 / 1000),
                   round(max(ds), 2) if ds else "", sum(1 for v in vi[k] if v[3])]
            if a.stats_json:
                o = None
                for s in stats_rows:
                    if s["_t"] <= k + 1:
                        o = s
                row += ["" if o is None else o.get(c, "") for c in
                        ("state", "kbps", "video_bitrate_kbps", "link_kbps", "congestion",
                         "buffer_ms", "video_dropped_congestion", "audio_frames_dropped",
                         "reconnects")]
            if a.obs_log:
                for t, kb, _ in obs["dbr"]:
                    if t <= k + 1 and kb is not None:
                        dbr_now = kb
                row += [dbr_now]
            per_sec.append(row)
            f.write(",".join(str(x) for x in row) + "\n")

    windows = []
    for k in range(0, n_sec, 5):
        w1 = min(k + 5, stop)
        if w1 - k < 2.5:  # the few packets sent while stopping
            break
        windows.append({"t": k, "fps": round(frames_in(k, w1) / (w1 - k), 1),
                        "kbps": round(vbytes_in(k, w1) * 8 / (w1 - k) / 1000)})

    out = {
        "label": a.label,
        "note": a.note or "",
        "files": files,
        "ceiling_kbps": round(CEILING_KBPS),
        "throttle_on_s": round(on, 2), "throttle_off_s": round(off, 2), "stop_s": round(stop, 2),
        "judged_span_s": [round(span0, 2), round(span1, 2)],
        "frames_span": frames_span, "frames_expected": round(expected),
        "frames_pct": round(100 * frames_span / expected, 1) if expected else None,
        "frames_pct_unthrottled": round(100 * frames_free, 1) if frames_free == frames_free else None,
        "freeze_span_s": round(longest_freeze(span0, span1), 3) if vts else None,
        "freeze_all_s": round(longest_freeze(first_v, min(stop, vts[-1] + 1 / FPS)), 3) if vts else None,
        "video_kbps_span": round(kbps_span),
        "received_kbps_throttled": round(recv_span),
        "audio_s_span": round(audio_span, 2), "audio_expected_s": round(span, 2),
        "audio_pct": round(100 * audio_span / span, 1) if span else None,
        "max_delay_s": round(max_delay, 2),
        "decode_errors": errors, "frame_num_gaps": gaps,
        "recovery_s": None if recovery is None else round(recovery, 1),
        "reconnects": reconnects, "reconnects_from": reconnect_src,
        "windows_5s": windows,
    }
    if final:
        out["onair_final"] = {k: final.get(k) for k in (
            "video_frames_captured", "video_packets_sent", "video_dropped_congestion",
            "video_dropped_disconnected", "audio_frames_sent", "audio_frames_dropped",
            "reconnects", "video_bitrate_kbps", "link_kbps")}
        vb = [s.get("video_bitrate_kbps") for s in stats_rows
              if span0 <= s["_t"] < span1 and s.get("video_bitrate_kbps") is not None]
        if vb:
            out["onair_target_kbps_span"] = [min(vb), max(vb)]
    if a.obs_log:
        out["obs_dbr_lines"] = len(obs["dbr"])
        out["obs_dbr_down"] = sum(1 for d in obs["dbr"] if re.search(r"congestion|dropping|lowered|decreased", d[2], re.I))
        out["obs_dbr_up"] = sum(1 for d in obs["dbr"] if re.search(r"increased", d[2], re.I))
        out["obs_dbr_back"] = sum(1 for d in obs["dbr"] if re.search(r"going back", d[2], re.I))
        out["obs_dbr_first"] = [(round(t, 1), kb) for t, kb, _ in obs["dbr"][:3]]
        out["obs_dbr_min_kbps"] = min((kb for _, kb, _ in obs["dbr"] if kb is not None), default=None)
        out["obs_dropped_frames"] = obs["drops"]
        out["obs_lagged_frames"] = obs["lagged"]
        out["obs_log_lines"] = obs["lines"]
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps({k: out[k] for k in out if k not in ("windows_5s", "obs_log_lines")}),
          file=sys.stderr)


def fmt(v, unit="", nd=None):
    if v is None:
        return "n/a"
    if nd is not None:
        v = f"{v:.{nd}f}"
    return f"{v}{unit}"


def table(a):
    rs = []
    for p in a.jsons:
        with open(p) as f:
            rs.append(json.load(f))
    if not rs:
        return
    r0 = rs[0]
    s0, s1 = r0["judged_span_s"]
    print(f"Judged span: {s1 - s0:.0f} s, from {s0 - r0['throttle_on_s']:.0f} s after the throttle "
          "starts to its end; "
          "times are seconds after nginx saw the publish.")
    print()
    print("| publisher | frames reached the viewer (judged span) | longest freeze: judged span / whole run "
          "| video kbit/s (judged span) | received kbit/s while throttled | audio (judged span) "
          f"| max delay behind live | decode errors / frame num gaps | back to 80 % of {r0.get('ceiling_kbps', 2500)}k after the link frees "
          "| reconnects | notes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rs:
        frames = f"{fmt(r['frames_pct'], ' %')} ({r['frames_span']}/{r['frames_expected']})"
        freeze = f"{fmt(r['freeze_span_s'], ' s', 2)} / {fmt(r['freeze_all_s'], ' s', 2)}"
        audio = f"{fmt(r['audio_pct'], ' %')} ({r['audio_s_span']:.1f}/{r['audio_expected_s']:.1f} s)"
        rec = "never" if r["recovery_s"] is None else f"{r['recovery_s']:.1f} s"
        notes = []
        if r.get("note"):
            notes.append(r["note"])
        if r.get("frames_pct_unthrottled") is not None:
            notes.append(f"unthrottled before: {r['frames_pct_unthrottled']} % of frames")
        if "onair_final" in r:
            o = r["onair_final"]
            notes.append(f"dropped for congestion {o.get('video_dropped_congestion')}, audio dropped "
                         f"{o.get('audio_frames_dropped')}")
            if r.get("onair_target_kbps_span"):
                lo, hi = r["onair_target_kbps_span"]
                notes.append(f"encoder target {lo}-{hi} kbit/s")
        if "obs_dbr_lines" in r:
            notes.append(f"{r['obs_dbr_lines']} dynamic-bitrate log lines ({r['obs_dbr_down']} down, "
                         f"{r['obs_dbr_up']} up, {r.get('obs_dbr_back', 0)} 'going back to prev bitrate'; "
                         f"lowest {fmt(r['obs_dbr_min_kbps'])} kbit/s)")
            if r.get("obs_dropped_frames"):
                notes.append(f"OBS dropped frames (bandwidth): {r['obs_dropped_frames']}")
            if r.get("obs_lagged_frames"):
                notes.append(f"OBS frames lagged by rendering (duplicated): {r['obs_lagged_frames']}")
        if len(r["files"]) > 1:
            notes.append(f"{len(r['files'])} recordings")
        print(f"| {r['label']} | {frames} | {freeze} | {r['video_kbps_span']} | "
              f"{r['received_kbps_throttled']} | {audio} | {r['max_delay_s']:.1f} s | "
              f"{r['decode_errors']} / {r['frame_num_gaps']} | {rec} | {r['reconnects']} | "
              f"{'; '.join(notes)} |")
    print()
    on, off = r0["throttle_on_s"], r0["throttle_off_s"]
    print(f"Per 5 s window (content time): video frames per second / video kbit/s. "
          f"Throttled from {on:.0f} s to {off:.0f} s.")
    print()
    print("| t (s) | " + " | ".join(r["label"] for r in rs) + " |")
    print("|---|" + "---|" * len(rs))
    n = max(len(r["windows_5s"]) for r in rs)
    for i in range(n):
        t = rs[0]["windows_5s"][i]["t"] if i < len(rs[0]["windows_5s"]) else i * 5
        mark = " (throttled)" if on - 0.5 <= t < off - 0.5 else ""
        cells = []
        for r in rs:
            w = r["windows_5s"][i] if i < len(r["windows_5s"]) else None
            cells.append("" if w is None else f"{w['fps']:.1f} / {w['kbps']}")
        print(f"| {t}-{t + 5}{mark} | " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    j = sub.add_parser("judge")
    j.add_argument("--label", required=True)
    j.add_argument("--events", required=True)
    j.add_argument("--sizes", required=True)
    j.add_argument("--csv", required=True)
    j.add_argument("--json", required=True)
    j.add_argument("--stats-json")
    j.add_argument("--obs-log")
    j.add_argument("--note")
    j.add_argument("recs", nargs="*")
    t = sub.add_parser("table")
    t.add_argument("jsons", nargs="+")
    a = ap.parse_args()
    if a.cmd == "judge":
        a.recs = sorted(a.recs)
        judge(a)
    else:
        table(a)


if __name__ == "__main__":
    main()
