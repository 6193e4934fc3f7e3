//! `loadgen`: the load benchmark of giaoban's media plane (issue 7).
//!
//! It starts the real `giaoban` binary on loopback with its own temp config,
//! creates a meeting and invitations with the CLI, joins participants through
//! the real signaling protocol with lightweight webrtc-rs clients (the test
//! client of `giaoban_tests::client`, many per thread on a small tokio
//! runtime), lets them publish synthetic Opus and VP8 (real VP8 key frame
//! markers) and receive whatever the server forwards, then measures a window
//! after a warm-up and prints a table (and JSON with `--json`).
//!
//! `--scenario giaoban100` is issue 7's meeting: one chair and 98 bridge
//! points (scaled by `--scale`); `--scenario giaoban200` is the same meeting
//! at the size of a merged province's giao ban since July 2025 (issue 25):
//! one chair and 199 bridge points (communes, wards, special zones and
//! departments). Every client publishes simulcast VP8 (rid
//! `q`/`h`/`f` on their own SSRCs, as Chromium sends it, obeying the
//! server's `layers_wanted` and answering its key frame requests) and Opus
//! with RFC 6464 audio levels; a few bridge points take turns to speak
//! ([`Scene`]); every client asks with `set_quality` for the chair's and the
//! active speaker's video `high` and every other video `low`, and the server
//! runs with `media.last_n = 10` and `media.audio_loudest = 3`. In the
//! window the run checks, per subscriber, how many videos it received and at
//! which layer, and how many audios ([`Scene::judge`]), and counts loss as
//! gaps in each layer's packet counter. `--selective false` is the former
//! all-to-all run (one layer, every participant receives every other, no
//! selection), which the Janus reference can be compared with.
//!
//! With `--reference janus|bare|all` the same run then measures references
//! under the same load: Janus VideoRoom (the same participant ids, media and
//! subscriptions, through `giaoban_tests::janus`) and the bare forwarder
//! (`bareforward` as a child process with giaoban's packet rate, payload
//! size and fan-out); it prints them side by side with the ratios of CPU
//! per forwarded packet. `scripts/bench` builds everything in release and
//! runs this in the network namespace Janus needs.
//!
//! Run it in release: `cargo run --release -p giaoban-tests --bin loadgen -- --help`.
//! What every figure means is in `docs/performance.md`.
//!
//! # Layout
//! - [`Args`]: the command line; [`plan`] turns it into participants;
//!   [`Scene`]: the selective giao ban's speakers, subscriptions and check.
//! - [`run`]: giaoban ([`run_giaoban`]: server, invitations, joins), then
//!   the references ([`run_janus`], [`run_bare`]), then the comparison.
//! - [`measure`]: for one system: every stream flowing, warm-up, the
//!   measurement window, the report.
//! - [`Snapshot`]: counters read at the start and end of the window (client
//!   counters, the server's CPU time from `/proc/<pid>/stat`, the machine's
//!   CPU from `/proc/stat`); [`Report`] is their difference, printed and
//!   written as JSON.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{ArgAction, Parser, ValueEnum};
use giaoban_tests::client::{
    ClientState, JoinOptions, Kind, MediaClock, MediaOptions, Pc, TestClient, SIMULCAST_RIDS,
};
use giaoban_tests::janus::{self, Janus, JanusLink, JanusOptions};
use giaoban_tests::procstat::{
    clock_ticks_per_second, loadavg, machine_cpu_ticks, machine_description, proc_cpu_ticks,
    proc_rss, time_string, udp_buffer_errors,
};
use giaoban_tests::repair::RepairOptions;
use giaoban_tests::{token_of, ServerOptions, TestServer};
use serde_json::{json, Value};

/// Video frames per second of the synthetic clients.
const FPS: u32 = 30;
/// How long the joins may take to reach every expected stream.
const MESH_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// `--publishers` participants publish, `--subscribers` only receive.
    Custom,
    /// One chair and 98 bridge points, all publishing (simulcast) and
    /// receiving the chair's and the speaker's high layer, the other videos
    /// of last-N at the low layer and the loudest audio; scaled by `--scale`.
    /// With `--selective false`: the former all-to-all run.
    Giaoban100,
    /// The same meeting with one chair and 199 bridge points (a merged
    /// province's communes and departments), scaled by `--scale`.
    Giaoban200,
}

impl Scenario {
    /// The giao ban scenarios: participants at `--scale 1`, the chair
    /// included. `None` for `custom`.
    fn meeting_size(self) -> Option<usize> {
        match self {
            Scenario::Custom => None,
            Scenario::Giaoban100 => Some(99),
            Scenario::Giaoban200 => Some(200),
        }
    }

    /// The scenario's name on the command line and in the JSON.
    fn name(self) -> String {
        format!("{self:?}").to_lowercase()
    }
}

/// Whether the server may shed video when short of CPU (`sfu`
/// engine::overload) during the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Shedding {
    /// On in the selective giao ban (what a real meeting does), off in
    /// all-to-all runs (everything there is a thumbnail: shedding would
    /// forward less and the figures would not compare with Janus's).
    Auto,
    /// The server's defaults.
    On,
    /// No step before 60 s after the server's start (`media.shed_step_secs
    /// = 60`, the most it takes), and after that only when the engine is
    /// fully busy or its queue drops datagrams (`media.shed_busy_percent =
    /// 100`): a run that ends sooner is not shed.
    Off,
}

/// Which references to measure after giaoban, with the same load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Reference {
    /// giaoban only.
    None,
    /// The bare forwarder (`bareforward`): this machine's floor.
    Bare,
    /// Janus VideoRoom (`apt-get install janus`; needs the namespace of
    /// `scripts/bench`).
    Janus,
    /// Both.
    All,
}

impl Reference {
    fn bare(self) -> bool {
        matches!(self, Reference::Bare | Reference::All)
    }
    fn janus(self) -> bool {
        matches!(self, Reference::Janus | Reference::All)
    }
}

/// Load benchmark: real giaoban server, many webrtc-rs clients.
#[derive(Debug, Clone, Parser)]
#[command(name = "loadgen", args_override_self = true)]
struct Args {
    /// Scenario.
    #[arg(long, value_enum, default_value = "custom")]
    scenario: Scenario,
    /// giaoban100, giaoban200: fraction of the meeting's participants (99:
    /// 1 chair + 98 bridges; 200: 1 chair + 199 bridges).
    #[arg(long, default_value_t = 0.2)]
    scale: f64,
    /// custom: participants that publish audio and video (and receive).
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// custom: participants that only receive.
    #[arg(long, default_value_t = 0)]
    subscribers: usize,
    /// Seconds of measurement (after the warm-up).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds of warm-up once every stream flows.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Video bitrate of each publisher (the bridges in a giao ban), kbit/s.
    #[arg(long, default_value_t = 300)]
    video_kbps: u32,
    /// giaoban100, giaoban200: video bitrate of the chair, kbit/s.
    #[arg(long, default_value_t = 1000)]
    chair_video_kbps: u32,
    /// giaoban100, giaoban200: publish simulcast and subscribe as the
    /// scenario says (set_quality, last-N, loudest audio). false: the
    /// all-to-all run of before (one layer, everybody receives everybody;
    /// what the Janus reference can be compared with).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    selective: bool,
    /// giao ban (selective): the server's `media.last_n`.
    #[arg(long, default_value_t = 10)]
    last_n: usize,
    /// giao ban (selective): the server's `media.audio_loudest`.
    #[arg(long, default_value_t = 3)]
    audio_loudest: usize,
    /// giao ban (selective): bridge points that take turns to speak (the
    /// speaker loud, the two before it quieter, everybody else silent).
    #[arg(long, default_value_t = 4)]
    talkers: usize,
    /// giao ban (selective): seconds of each speaker's turn.
    #[arg(long, default_value_t = 10)]
    speaker_every: u64,
    /// Participants receive in slots (`join` with `"receive": "slots"`): the
    /// subscriber connection negotiates only what it is forwarded at once.
    /// false: a sent track per published track.
    #[arg(long, default_value_t = false, action = ArgAction::Set)]
    slots: bool,
    /// Publishers send audio (Opus-sized packets every 20 ms).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    audio: bool,
    /// Publishers send video (30 frames per second).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    video: bool,
    /// Seconds between video key frames.
    #[arg(long, default_value_t = 2.0)]
    keyframe_interval: f64,
    /// Worker threads of the load generator's runtime (all clients share them).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Participants joining at once.
    #[arg(long, default_value_t = 4)]
    join_concurrency: usize,
    /// The giaoban binary (default: `giaoban` next to this executable, i.e.
    /// `target/release/giaoban` for a release build).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The server's log level (`[log] level`).
    #[arg(long, default_value = "warn")]
    server_log: String,
    /// The server's `media.send_workers`: threads that write forwarded
    /// packets (SRTP protect and send), its engine's own included; 0: not
    /// set, the server's default (1).
    #[arg(long, default_value_t = 0)]
    send_workers: usize,
    /// The server's shedding of video under overload during the run.
    #[arg(long, value_enum, default_value_t = Shedding::Auto)]
    shedding: Shedding,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// A label stored in the JSON (e.g. "small").
    #[arg(long)]
    label: Option<String>,
    /// References measured after giaoban with the same participants, media
    /// and subscriptions; CPU per forwarded packet is reported as ratios.
    #[arg(long, value_enum, default_value = "none")]
    reference: Reference,
    /// The Janus executable.
    #[arg(long, default_value = "janus")]
    janus_bin: PathBuf,
    /// The only interface Janus gathers candidates on (`scripts/bench`
    /// makes `v0`, a veth end with 10.77.0.1).
    #[arg(long, default_value = "v0")]
    janus_iface: String,
    /// Janus's `debug_level` (3: warnings).
    #[arg(long, default_value_t = 3)]
    janus_log_level: u8,
    /// The bare forwarder (default: `bareforward` next to this executable).
    #[arg(long)]
    bare_bin: Option<PathBuf>,
}

/// RFC 6464 levels (-dBov) the selective giao ban's publishers send: the
/// speaker of the turn, the two speakers before it (quieter, still above
/// the server's audibility threshold of about -55 dBov), everybody else.
const LEVEL_SPEAKER: u8 = 10;
const LEVEL_QUIET: u8 = 40;
const LEVEL_SILENT: u8 = 127;

/// The selective giao ban (giaoban100, giaoban200): who speaks when (each
/// publisher's audio level, by turns of `--speaker-every` seconds among
/// `--talkers` bridge points), and what each client asks for, as the web client would: the
/// chair's video and the video of the latest `active_speaker` it was told
/// of `high`, every other video `low` (`set_quality` whenever that changes
/// or a new track appears). Also the check of what each client receives.
struct Scene {
    /// Plan indices of the talkers, in speaking order.
    talkers: Vec<usize>,
    /// Plan index of the chair.
    chair: usize,
    every: Duration,
    /// When turn 0 began.
    start: Instant,
    last_n: usize,
    audio_loudest: usize,
    /// Display names by plan index (for the output).
    names: Vec<String>,
    state: std::sync::Mutex<SceneState>,
}

#[derive(Default)]
struct SceneState {
    /// The chair's participant id, once it joined.
    chair_id: Option<String>,
    /// Per plan index: events of the client already read, the latest
    /// active speaker it was told of, and the quality asked per video
    /// track id.
    clients: Vec<ClientView>,
    /// set_quality messages sent (each names every track whose wish
    /// changed to one quality).
    requests: u64,
}

#[derive(Default)]
struct ClientView {
    events_read: usize,
    speaker: Option<String>,
    asked: std::collections::HashMap<String, &'static str>,
}

/// Per client: (sender, kind) -> packets and payload bytes per layer (0 =
/// single layer, 1 = q, 2 = h, 3 = f).
type LayerCounts = Vec<std::collections::BTreeMap<(String, Kind), [(u64, u64); 4]>>;

fn layer_counts(clients: &[TestClient]) -> LayerCounts {
    clients
        .iter()
        .map(|c| {
            c.state()
                .media
                .iter()
                .map(|(key, m)| {
                    let mut per = [(0, 0); 4];
                    for (l, v) in &m.layers {
                        if let Some(slot) = per.get_mut(usize::from(*l)) {
                            *slot = *v;
                        }
                    }
                    (key.clone(), per)
                })
                .collect()
        })
        .collect()
}

impl Scene {
    fn new(args: &Args, planned: &[Planned]) -> anyhow::Result<Scene> {
        let chair = planned
            .iter()
            .position(|p| p.role == "chair")
            .context("no chair")?;
        let bridges: Vec<usize> = (0..planned.len()).filter(|&i| i != chair).collect();
        let t = args.talkers.clamp(1, bridges.len().max(1));
        // Spread over the joining order: early and late bridge points.
        let talkers = (0..t)
            .filter_map(|k| bridges.get(k * bridges.len() / t).copied())
            .collect();
        Ok(Scene {
            talkers,
            chair,
            every: Duration::from_secs(args.speaker_every.max(1)),
            start: Instant::now(),
            last_n: args.last_n,
            audio_loudest: args.audio_loudest,
            names: planned.iter().map(|p| p.name.clone()).collect(),
            state: std::sync::Mutex::new(SceneState::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SceneState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn turn_at(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.start).as_secs_f64() / self.every.as_secs_f64()) as u64
    }

    fn turn_start(&self, turn: u64) -> Instant {
        self.start + self.every.mul_f64(turn as f64)
    }

    /// The `back`-th speaker before the one of `turn` (0: that one).
    fn talker(&self, turn: u64, back: u64) -> usize {
        let t = self.talkers.len() as u64;
        self.talkers[((turn + 3 * t - back % t) % t) as usize]
    }

    /// The level participant `i` sends in `turn`.
    fn level(&self, turn: u64, i: usize) -> u8 {
        let t = self.talkers.len() as u64;
        if self.talker(turn, 0) == i {
            LEVEL_SPEAKER
        } else if (1..3.min(t)).any(|back| self.talker(turn, back) == i) {
            LEVEL_QUIET
        } else {
            LEVEL_SILENT
        }
    }

    /// Videos each participant receives: last-N of the N-1 others.
    fn videos(&self, n: usize) -> usize {
        if self.last_n == 0 {
            n - 1
        } else {
            self.last_n.min(n - 1)
        }
    }

    fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Applies the current turn's audio levels and every client's wishes.
    fn tick<'a>(&self, clients: impl Iterator<Item = (usize, &'a TestClient)>) {
        let turn = self.turn_at(Instant::now());
        let mut st = self.lock();
        for (i, c) in clients {
            if i == self.chair && st.chair_id.is_none() {
                st.chair_id = Some(c.participant_id().to_owned());
            }
            c.set_audio_level(Some(self.level(turn, i)));
            if st.clients.len() <= i {
                st.clients.resize_with(i + 1, ClientView::default);
            }
            let chair_id = st.chair_id.clone();
            let view = &mut st.clients[i];
            let me = c.participant_id();
            let videos: Vec<(String, String)> = {
                let cs = c.state();
                for e in cs.events.iter().skip(view.events_read) {
                    if e["type"] == "active_speaker" {
                        view.speaker = e["participant_id"].as_str().map(str::to_owned);
                    }
                }
                view.events_read = cs.events.len();
                cs.published_tracks
                    .iter()
                    .filter(|(_, (p, k))| *k == Kind::Video && p != me)
                    .map(|(t, (p, _))| (t.clone(), p.clone()))
                    .collect()
            };
            // What changed, in one list per quality (as the web client
            // does): 98 tracks at the first tick are two messages, not 98.
            let mut changed: std::collections::BTreeMap<&'static str, Vec<String>> =
                Default::default();
            for (track, owner) in videos {
                let high =
                    Some(&owner) == chair_id.as_ref() || Some(&owner) == view.speaker.as_ref();
                let q = if high { "high" } else { "low" };
                if view.asked.get(&track) != Some(&q) {
                    changed.entry(q).or_default().push(track);
                }
            }
            let mut sent = 0;
            for (q, tracks) in changed {
                let ids: Vec<&str> = tracks.iter().map(String::as_str).collect();
                if c.set_qualities(&ids, q).is_ok() {
                    sent += 1;
                    for t in tracks {
                        view.asked.insert(t, q);
                    }
                }
            }
            st.requests += sent;
        }
    }

    /// For each speaker's turn inside [`from`, `until`]: what every client
    /// received between 40 % and 80 % of the turn (after the switch has
    /// settled), judged against the scenario.
    async fn check_turns(
        &self,
        clients: &[TestClient],
        ids: &[String],
        from: Instant,
        until: Instant,
    ) -> Vec<Value> {
        let mut out = Vec::new();
        let mut turn = self.turn_at(from);
        loop {
            let a = self.turn_start(turn) + self.every.mul_f64(0.4);
            let b = self.turn_start(turn) + self.every.mul_f64(0.8);
            if b > until {
                break;
            }
            if a >= from {
                tokio::time::sleep_until(tokio::time::Instant::from_std(a)).await;
                let before = layer_counts(clients);
                tokio::time::sleep_until(tokio::time::Instant::from_std(b)).await;
                let after = layer_counts(clients);
                let secs = (b - a).as_secs_f64();
                out.push(self.judge(turn, ids, &before, &after, secs));
            }
            turn += 1;
        }
        out
    }

    /// One turn's check: per subscriber, the videos it received (and the
    /// layer of each), the audios; against what the scenario says.
    fn judge(
        &self,
        turn: u64,
        ids: &[String],
        before: &LayerCounts,
        after: &LayerCounts,
        secs: f64,
    ) -> Value {
        let n = ids.len();
        let speaker = self.talker(turn, 0);
        let audible: Vec<usize> = (0..n)
            .filter(|&j| self.level(turn, j) < LEVEL_SILENT)
            .collect();
        let mut shapes: std::collections::BTreeMap<String, usize> = Default::default();
        let mut mismatches: Vec<String> = Vec::new();
        let mut ok = 0;
        // Received payload bit rate per stream, per layer (kbit/s), and audio.
        let mut layer_rates: [Vec<f64>; 4] = Default::default();
        let mut audio_rates: Vec<f64> = Vec::new();
        for i in 0..n {
            let (Some(b), Some(a)) = (before.get(i), after.get(i)) else {
                continue;
            };
            let diff = |key: &(String, Kind)| -> [(u64, u64); 4] {
                let x = a.get(key).copied().unwrap_or_default();
                let y = b.get(key).copied().unwrap_or_default();
                [0, 1, 2, 3].map(|l| (x[l].0 - y[l].0, x[l].1 - y[l].1))
            };
            let mut video_layers: Vec<(usize, Vec<usize>)> = Vec::new();
            let mut audios: Vec<usize> = Vec::new();
            for (j, id) in ids.iter().enumerate() {
                if j == i {
                    continue;
                }
                let v = diff(&(id.clone(), Kind::Video));
                let layers: Vec<usize> = (0..4).filter(|&l| v[l].0 > 0).collect();
                for &l in &layers {
                    layer_rates[l].push(v[l].1 as f64 * 8.0 / 1000.0 / secs);
                }
                if !layers.is_empty() {
                    video_layers.push((j, layers));
                }
                let au = diff(&(id.clone(), Kind::Audio));
                if au[0].0 > 0 {
                    audios.push(j);
                    audio_rates.push(au[0].1 as f64 * 8.0 / 1000.0 / secs);
                }
            }
            let on = |l: usize| {
                video_layers
                    .iter()
                    .filter(|(_, ls)| ls.as_slice() == [l])
                    .count()
            };
            let mixed = video_layers.iter().filter(|(_, ls)| ls.len() > 1).count();
            let shape = format!(
                "{} videos ({} high, {} low{}), {} audios",
                video_layers.len(),
                on(3),
                on(1),
                match (on(2), mixed) {
                    (0, 0) => String::new(),
                    (m, x) => format!(", {m} medium, {x} switching"),
                },
                audios.len()
            );
            *shapes.entry(shape.clone()).or_default() += 1;
            // What the scenario says for subscriber i.
            let highs: Vec<usize> = [self.chair, speaker]
                .into_iter()
                .filter(|&j| j != i)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let want_videos = self.videos(n);
            let audible_others: Vec<usize> = audible.iter().copied().filter(|&j| j != i).collect();
            let want_audios = if self.audio_loudest == 0 {
                n - 1
            } else {
                self.audio_loudest.min(audible_others.len())
            };
            let mut wrong = Vec::new();
            if video_layers.len() != want_videos {
                wrong.push(format!("{} videos, not {want_videos}", video_layers.len()));
            }
            for &h in &highs {
                if !video_layers
                    .iter()
                    .any(|(j, ls)| *j == h && ls.as_slice() == [3])
                {
                    wrong.push(format!("{} not at the high layer", ids[h]));
                }
            }
            if on(3) != highs.len() || on(1) + highs.len() != want_videos {
                wrong.push(format!("layers {shape}"));
            }
            if audios.len() != want_audios {
                wrong.push(format!("{} audios, not {want_audios}", audios.len()));
            }
            if self.audio_loudest > 0 && audios.iter().any(|j| !audible.contains(j)) {
                wrong.push("a silent participant's audio".to_owned());
            }
            if wrong.is_empty() {
                ok += 1;
            } else if mismatches.len() < 8 {
                mismatches.push(format!("{}: {}", ids[i], wrong.join("; ")));
            }
        }
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        json!({
            "turn": turn,
            "speaker": ids.get(speaker),
            "speaker_name": self.names.get(speaker),
            "seconds": secs,
            "subscribers": n,
            "as_the_scenario_says": ok,
            "shapes": shapes,
            "mismatches": mismatches,
            "kbps_per_stream": {
                "q": mean(&layer_rates[1]),
                "h": mean(&layer_rates[2]),
                "f": mean(&layer_rates[3]),
                "single_layer": mean(&layer_rates[0]),
                "audio": mean(&audio_rates),
            },
        })
    }
}

/// One participant to join.
struct Planned {
    name: String,
    role: &'static str,
    publish: bool,
    video_kbps: u32,
}

/// Media packets per second one publisher should send with these options
/// (one video layer).
fn planned_pps(args: &Args, video_kbps: u32) -> f64 {
    let audio = if args.audio { 50.0 } else { 0.0 };
    if !args.video {
        return audio;
    }
    audio + video_pps(args, frame_bytes(video_kbps))
}

/// Payload bytes of a delta frame at `video_kbps` (the full layer).
fn frame_bytes(video_kbps: u32) -> usize {
    (video_kbps as usize * 1000 / 8 / FPS as usize).max(64)
}

/// Packets per second of a video stream of `frame`-byte delta frames, as
/// the client sizes them: key frames 4x (every `--keyframe-interval`; key
/// frames asked for by the server come on top), packets of at most 1100
/// bytes.
fn video_pps(args: &Args, frame: usize) -> f64 {
    let every = ((args.keyframe_interval * f64::from(FPS)).round()).max(1.0);
    let delta = frame.div_ceil(1100) as f64;
    let key = (frame * 4).div_ceil(1100) as f64;
    f64::from(FPS) * (delta * (every - 1.0) + key) / every
}

/// As [`planned_pps`] for a simulcast publisher sending the layers
/// `active` (rids; `q`, `h`, `f` carry ¼, ½ and all of the frame bytes).
fn planned_pps_layers(args: &Args, video_kbps: u32, active: &[String]) -> f64 {
    let audio = if args.audio { 50.0 } else { 0.0 };
    if !args.video {
        return audio;
    }
    let frame = frame_bytes(video_kbps);
    let video: f64 = SIMULCAST_RIDS
        .iter()
        .enumerate()
        .filter(|(_, rid)| active.iter().any(|a| a == *rid))
        .map(|(i, _)| video_pps(args, (frame << i) / 4))
        .sum();
    audio + video
}

/// Whether the run is a selective giao ban (simulcast, set_quality,
/// last-N, loudest audio).
fn selective(args: &Args) -> bool {
    args.scenario.meeting_size().is_some() && args.selective
}

/// Whether the server sheds during this run (see [`Shedding`]).
fn shedding(args: &Args) -> bool {
    match args.shedding {
        Shedding::Auto => selective(args),
        Shedding::On => true,
        Shedding::Off => false,
    }
}

fn plan(args: &Args) -> anyhow::Result<Vec<Planned>> {
    let mut out = Vec::new();
    match args.scenario.meeting_size() {
        None => {
            for i in 0..args.publishers {
                out.push(Planned {
                    name: format!("Điểm cầu {i:03}"),
                    role: if i == 0 { "chair" } else { "bridge" },
                    publish: true,
                    video_kbps: args.video_kbps,
                });
            }
            for i in 0..args.subscribers {
                out.push(Planned {
                    name: format!("Người xem {i:03}"),
                    role: "observer",
                    publish: false,
                    video_kbps: 0,
                });
            }
        }
        Some(full) => {
            if !(args.scale > 0.0 && args.scale <= 1.0) {
                bail!("--scale must be in (0, 1]");
            }
            let n = ((full as f64 * args.scale).round() as usize).max(2);
            out.push(Planned {
                name: "Chủ tịch UBND tỉnh".into(),
                role: "chair",
                publish: true,
                video_kbps: args.chair_video_kbps,
            });
            for i in 1..n {
                out.push(Planned {
                    name: format!("UBND xã {i:03}"),
                    role: "bridge",
                    publish: true,
                    video_kbps: args.video_kbps,
                });
            }
        }
    }
    if out.len() < 2 || !out.iter().any(|p| p.publish) {
        bail!("need at least two participants and one publisher");
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(run(args))
}

/// Counters read at one moment.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    /// Media packets stamped in the window: sent by each client, received
    /// by all (see `MediaClock`).
    window_sent: Vec<u64>,
    window_received: u64,
    /// Media packets (and payload bytes) sent by all clients.
    sent: u64,
    sent_bytes: u64,
    /// Media packets (and payload bytes) received by all clients.
    received: u64,
    received_bytes: u64,
    /// Datagrams and their bytes: clients' publisher connections to the
    /// server, the server to clients' subscriber connections.
    wire_to_server: (u64, u64),
    wire_from_server: (u64, u64),
    server_ticks: u64,
    self_ticks: u64,
    machine: (u64, u64),
    udp_errors: (u64, u64),
    /// Counter gaps of packets stamped in the window (selective runs).
    window_gaps: i64,
    /// Key frame requests the publishers saw, and key frames they sent for
    /// them (or for resumed layers), since they joined.
    keyframe_requests: u64,
    keyframes_on_request: u64,
}

fn snapshot(clients: &[TestClient], server_pid: &str) -> anyhow::Result<Snapshot> {
    let mut s = Snapshot {
        server_ticks: proc_cpu_ticks(server_pid)?,
        self_ticks: proc_cpu_ticks("self")?,
        machine: machine_cpu_ticks()?,
        udp_errors: udp_buffer_errors(),
        ..Snapshot::default()
    };
    for c in clients {
        let st = c.state();
        s.window_sent.push(st.window_sent);
        s.window_received += st.window_received;
        s.window_gaps += st.window_gaps;
        s.keyframe_requests += st.keyframe_requests;
        s.keyframes_on_request += st.keyframes_on_request;
        s.sent += st.sent.values().sum::<u64>();
        s.sent_bytes += st.sent_bytes.values().sum::<u64>();
        for m in st.media.values() {
            s.received += m.packets;
            s.received_bytes += m.bytes;
        }
        let get = |m: &std::collections::BTreeMap<Pc, u64>, pc| m.get(&pc).copied().unwrap_or(0);
        s.wire_to_server.0 += get(&st.datagrams_out, Pc::Publisher);
        s.wire_to_server.1 += get(&st.datagram_bytes_out, Pc::Publisher);
        s.wire_from_server.0 += get(&st.datagrams_in, Pc::Subscriber);
        s.wire_from_server.1 += get(&st.datagram_bytes_in, Pc::Subscriber);
    }
    Ok(s)
}

fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i.min(sorted.len() - 1)).copied()
}

/// What a giao ban scenario with `--selective false` measures.
const GIAOBAN_ALL_TO_ALL: &str = "all-to-all (--selective false): every client publishes one \
VP8 layer and receives all N-1 videos and all N-1 audios; the server's last-N and loudest-audio \
selection are off (media.last_n = 0, media.audio_loudest = 0)";

/// What the giao ban scenario does, for the output and the JSON.
fn giaoban_description(args: &Args) -> String {
    if !selective(args) {
        return GIAOBAN_ALL_TO_ALL.to_owned();
    }
    format!(
        "every client publishes simulcast VP8 (q/h/f: 1/4, 1/2, all of its bit rate) and Opus with \
         RFC 6464 levels; {} bridge points take turns of {} s to speak (the speaker at -{} dBov, \
         the two before it at -{} dBov, everybody else silent, -127); every client asks \
         (set_quality) for the chair's and the active speaker's video high, every other video \
         low; the server runs with media.last_n = {} and media.audio_loudest = {}",
        args.talkers, args.speaker_every, LEVEL_SPEAKER, LEVEL_QUIET, args.last_n, args.audio_loudest
    )
}

async fn run(args: Args) -> anyhow::Result<()> {
    let planned = plan(&args)?;
    let n = planned.len();
    println!(
        "loadgen: {} participants ({} publishing), scenario {}, {} s warm-up + {} s measured, {} client threads",
        n,
        planned.iter().filter(|p| p.publish).count(),
        args.scenario.name(),
        args.warmup,
        args.duration,
        args.threads
    );
    if args.scenario.meeting_size().is_some() {
        println!("{}: {}", args.scenario.name(), giaoban_description(&args));
    }
    // The Janus adapter subscribes everybody to everything, one layer.
    let janus_skipped = selective(&args) && args.reference.janus();
    if janus_skipped {
        println!(
            "Janus reference skipped: it is measured all-to-all only (--scenario custom, or \
             a giao ban with --selective false)"
        );
    }
    let (mut report, ids) = run_giaoban(&args, &planned).await?;
    println!("\n== giaoban");
    print_table(&report);
    print_checks(&report);
    let mut refs = serde_json::Map::new();
    if janus_skipped {
        refs.insert(
            "janus".into(),
            json!({"skipped": "measured all-to-all only (--selective false)"}),
        );
    } else if args.reference.janus() {
        println!("== Janus (same participants, media and subscriptions)");
        match run_janus(&args, &planned, &ids).await {
            Ok(r) => {
                print_table(&r);
                refs.insert("janus".into(), r);
            }
            Err(e) => {
                println!("Janus reference failed: {e:#}\n");
                refs.insert("janus".into(), json!({"error": format!("{e:#}")}));
            }
        }
    }
    if args.reference.bare() {
        println!("== bare forwarder (the same load)");
        match run_bare(&args, &planned, &report).await {
            Ok(r) => {
                refs.insert("bare".into(), r);
            }
            Err(e) => {
                println!("bare reference failed: {e:#}\n");
                refs.insert("bare".into(), json!({"error": format!("{e:#}")}));
            }
        }
    }
    if !refs.is_empty() {
        let ours = report["server_cpu_us_per_forwarded_packet"].as_f64();
        let ratio = |r: &Value, key: &str| match (ours, r[key].as_f64()) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let ratios = json!({
            "giaoban_over_bare": refs.get("bare").and_then(|b| ratio(b, "cpu_us_per_forwarded_packet")),
            "giaoban_over_janus": refs.get("janus").and_then(|j| ratio(j, "server_cpu_us_per_forwarded_packet")),
        });
        report["references"] = Value::Object(refs);
        report["ratios"] = ratios;
        print_comparison(&report);
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).context("json")?;
        std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))?;
        println!("JSON written to {}", path.display());
    }
    Ok(())
}

/// The clients' media options of one participant.
fn media_of(args: &Args, p: &Planned, clock: &Arc<MediaClock>) -> MediaOptions {
    MediaOptions {
        publish: p.publish,
        audio: args.audio,
        video: args.video,
        video_frame_bytes: Some(frame_bytes(p.video_kbps)),
        keyframe_every: ((args.keyframe_interval * f64::from(FPS)).round() as u64).max(1),
        clock: Some(clock.clone()),
        simulcast: selective(args),
    }
}

/// The order of joins: the first publisher alone, then everybody else.
fn join_order(planned: &[Planned]) -> anyhow::Result<(usize, Vec<usize>)> {
    let first = planned
        .iter()
        .position(|p| p.publish)
        .context("no publisher")?;
    let mut order: Vec<usize> = vec![first];
    order.extend((0..planned.len()).filter(|&i| i != first));
    Ok((first, order))
}

/// giaoban: server, invitations, joins; then the measurement. Returns the
/// report and the participants' ids (the references reuse them, so the
/// payloads, which carry the sender's id, have the same sizes).
async fn run_giaoban(args: &Args, planned: &[Planned]) -> anyhow::Result<(Value, Vec<String>)> {
    let n = planned.len();
    // All-to-all runs: every participant receives every other publisher's
    // media (the expected streams and the loss count assume it, and Janus
    // does the same), so the server's last-N and loudest-audio selection
    // are off. The selective giao ban sets them as the scenario says.
    let (last_n, loudest) = if selective(args) {
        (args.last_n, args.audio_loudest)
    } else {
        (0, 0)
    };
    if !shedding(args) && args.warmup + args.duration > 50 {
        eprintln!(
            "loadgen: shedding is off only for the first 60 s of the server; \
             joins, {} s of warm-up and {} s measured may go past it",
            args.warmup, args.duration
        );
    }
    let server = TestServer::start_with(ServerOptions {
        bin: args.server_bin.clone(),
        log_level: Some(args.server_log.clone()),
        // Every simulated participant connects from 127.0.0.1: the
        // per-address socket cap (signaling.max_sockets_per_address) is
        // lifted for the benchmark. Nobody joins muted: a meeting of 20 or
        // more would otherwise block every bridge point's audio until the
        // chair gives the floor (signaling.join_muted_from), and the
        // scenario's speakers would be heard by nobody.
        extra_toml: format!(
            "[media]\nlast_n = {last_n}\naudio_loudest = {loudest}\n{workers}{shed}\
             [signaling]\nmax_sockets_per_address = 100000\njoin_muted_from = 0\n",
            // Only when asked: a server from before the setting refuses
            // the key (`--server-bin`).
            workers = match args.send_workers {
                0 => String::new(),
                n => format!("send_workers = {n}\n"),
            },
            shed = if shedding(args) {
                ""
            } else {
                "shed_busy_percent = 100\nshed_step_secs = 60\n"
            }
        ),
    })
    .await
    .context("start the server")?;
    let pid = server
        .pid()
        .context("the server exited at once")?
        .to_string();
    println!("server pid {pid}, media {}", server.media_udp);

    let meeting = server
        .create_meeting("Giao ban: đo tải")
        .await
        .context("create the meeting")?;
    let mut tokens = Vec::with_capacity(n);
    for chunk in planned.chunks(8) {
        let urls = futures_util::future::join_all(
            chunk
                .iter()
                .map(|p| server.invite(&meeting, &p.name, p.role)),
        )
        .await;
        for url in urls {
            tokens.push(token_of(&url.context("invite")?)?.to_owned());
        }
    }
    let rss_before = proc_rss(&pid)?;

    let clock = MediaClock::new();
    let ws_url = server.ws_url();

    // The first publisher joins alone and goes live, so every later
    // participant has media to receive from its first moment (join time).
    let join_started = Instant::now();
    let (first, order) = join_order(planned)?;
    let mut slots: Vec<Option<TestClient>> = (0..n).map(|_| None).collect();
    let scene = if selective(args) {
        Some(Scene::new(args, planned)?)
    } else {
        None
    };
    // Selective: a simulcast publisher answers the server's key frame
    // requests (PLI/FIR for one layer), as a browser does.
    let join = |i: usize| {
        TestClient::join_repair(
            &ws_url,
            &tokens[i],
            JoinOptions {
                slots: args.slots,
                ..JoinOptions::default()
            },
            media_of(args, &planned[i], &clock),
            RepairOptions {
                answer_keyframe_requests: selective(args),
                ..RepairOptions::default()
            },
        )
    };
    let c0 = join(first).await.context("the first publisher joins")?;
    if let Some(scene) = &scene {
        scene.tick(std::iter::once((first, &c0)));
    }
    let own = c0.participant_id().to_owned();
    c0.wait_until(Duration::from_secs(15), "its own tracks live", |st| {
        st.has_event("track_published", |e| {
            e["track"]["participant_id"] == own.as_str()
        })
    })
    .await?;
    slots[first] = Some(c0);
    for chunk in order[1..].chunks(args.join_concurrency.max(1)) {
        let joins = futures_util::future::join_all(chunk.iter().map(|&i| join(i))).await;
        for (&i, r) in chunk.iter().zip(joins) {
            slots[i] = Some(r.with_context(|| format!("{} joins", planned[i].name))?);
        }
        // Levels and set_quality as the clients arrive (a client asks for
        // its layout as soon as it sees the tracks).
        if let Some(scene) = &scene {
            scene.tick(
                slots
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| c.as_ref().map(|c| (i, c))),
            );
        }
    }
    let clients: Vec<TestClient> = slots.into_iter().flatten().collect();
    let ids: Vec<String> = clients
        .iter()
        .map(|c| c.participant_id().to_owned())
        .collect();
    println!(
        "all {n} joined in {:.1} s; waiting for every stream",
        join_started.elapsed().as_secs_f64()
    );
    let report = measure(
        args,
        planned,
        Measured {
            system: "giaoban",
            clients: &clients,
            ids: &ids,
            pid: &pid,
            first,
            clock: &clock,
            rss_before,
            join_started,
            join_times: true,
            bin: server_bin_name(args),
            scene: scene.as_ref(),
        },
    )
    .await?;
    let mut report = report;
    // What the server shed when short of CPU (sfu engine::overload): the
    // changes its log shows, in order, and the level at the end.
    let shed = shedding_in_log(&server.log());
    println!(
        "server shedding: {}",
        if shed.is_empty() {
            "none".to_owned()
        } else {
            shed.join(" -> ")
        }
    );
    report["server_shedding"] = json!(shed);
    drop(clients);
    drop(server);
    Ok((report, ids))
}

/// The levels the server's media engine shed to when short of CPU, in
/// order, from its log's `media engine load: shedding` warnings
/// (`ThumbnailLayers`: thumbnails' high layers; `Thumbnails`: thumbnails;
/// `None`: back to everything).
fn shedding_in_log(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("media engine load: shedding"))
        .map(|l| {
            let to = l
                .split_once("to=")
                .or_else(|| l.split_once("\"to\":"))
                .map(|(_, rest)| {
                    rest.trim_start_matches('"')
                        .split(|c: char| !c.is_ascii_alphanumeric())
                        .next()
                        .unwrap_or("")
                        .to_owned()
                })
                .unwrap_or_default();
            if to.is_empty() {
                l.trim().to_owned()
            } else {
                to
            }
        })
        .collect()
}

/// Janus: the same participants (ids, media) join its VideoRoom, every one
/// subscribing to the same streams as with giaoban; then the measurement.
async fn run_janus(args: &Args, planned: &[Planned], ids: &[String]) -> anyhow::Result<Value> {
    let n = planned.len();
    let janus = Janus::start(&JanusOptions {
        bin: args.janus_bin.clone(),
        iface: args.janus_iface.clone(),
        publishers: n + 4,
        debug_level: args.janus_log_level,
    })
    .await
    .context("start Janus")?;
    let pid = janus.pid().to_string();
    println!(
        "janus pid {pid}, API {}, media on {}",
        janus.base, janus.address
    );
    let rss_before = proc_rss(&pid)?;
    let clock = MediaClock::new();
    let join_started = Instant::now();
    let (first, order) = join_order(planned)?;
    // Feed ids in the room: participant i publishes as feed i + 1.
    let feed = |i: usize| i as u64 + 1;
    let mut slots: Vec<Option<(TestClient, JanusLink)>> = (0..n).map(|_| None).collect();
    for chunk in std::iter::once(&order[..1]).chain(order[1..].chunks(args.join_concurrency.max(1)))
    {
        let joins = futures_util::future::join_all(chunk.iter().map(|&i| {
            janus::join(
                &janus,
                feed(i),
                &ids[i],
                media_of(args, &planned[i], &clock),
            )
        }))
        .await;
        for (&i, r) in chunk.iter().zip(joins) {
            slots[i] = Some(r.with_context(|| format!("{} joins Janus", planned[i].name))?);
        }
    }
    let (clients, links): (Vec<TestClient>, Vec<JanusLink>) = slots.into_iter().flatten().unzip();
    // Janus offers a feed to subscribers once its publisher is connected.
    for (i, c) in clients.iter().enumerate() {
        if planned[i].publish {
            c.wait_until(
                Duration::from_secs(30),
                "publisher connected to Janus",
                |st| st.connected_after.contains_key(&Pc::Publisher),
            )
            .await
            .map_err(|e| {
                let timeline: Vec<String> = c
                    .state()
                    .timeline
                    .iter()
                    .map(|(t, what)| format!("  {:>8.1} ms {what}", t.as_secs_f64() * 1000.0))
                    .collect();
                anyhow::anyhow!(
                    "{e}\nclient timeline:\n{}\njanus log:\n{}",
                    timeline.join("\n"),
                    janus.log_tail(20)
                )
            })?;
        }
    }
    let all: Vec<usize> = (0..n).collect();
    for chunk in all.chunks(args.join_concurrency.max(1)) {
        let subs = futures_util::future::join_all(chunk.iter().map(|&me| {
            let feeds: Vec<(u64, String)> = (0..n)
                .filter(|&j| j != me && planned[j].publish)
                .map(|j| (feed(j), ids[j].clone()))
                .collect();
            links[me].subscribe(feeds)
        }))
        .await;
        for (&i, r) in chunk.iter().zip(subs) {
            r.with_context(|| format!("{} subscribes on Janus", planned[i].name))?;
        }
    }
    println!(
        "all {n} joined Janus and subscribed in {:.1} s; waiting for every stream",
        join_started.elapsed().as_secs_f64()
    );
    let report = measure(
        args,
        planned,
        Measured {
            system: "janus",
            clients: &clients,
            ids,
            pid: &pid,
            first,
            clock: &clock,
            rss_before,
            join_started,
            // Subscriptions wait for every publisher: not comparable.
            join_times: false,
            bin: args.janus_bin.display().to_string(),
            scene: None,
        },
    );
    let report = report.await;
    if report.is_err() {
        println!("janus log:\n{}", janus.log_tail(30));
    }
    drop(links);
    drop(clients);
    drop(janus);
    report
}

/// The bare forwarder with the load giaoban had: as many publishers, their
/// average packet rate and payload size, every packet to every other
/// participant.
async fn run_bare(args: &Args, planned: &[Planned], ours: &Value) -> anyhow::Result<Value> {
    let n = planned.len();
    let publishers = planned.iter().filter(|p| p.publish).count();
    let in_pps = ours["in"]["packets_per_s"].as_f64().unwrap_or(0.0);
    let in_bytes = ours["in"]["payload_bytes_per_s"].as_f64().unwrap_or(0.0);
    if in_pps <= 0.0 || publishers == 0 {
        bail!("giaoban's run sent nothing: no load to reproduce");
    }
    let pps = in_pps / publishers as f64;
    let size = (in_bytes / in_pps).round().max(16.0) as usize;
    // All-to-all: every packet to every other participant. Selective: as
    // many copies per packet as giaoban forwarded on average.
    let fanout = if selective(args) {
        let out_pps = ours["out"]["packets_per_s"].as_f64().unwrap_or(0.0);
        ((out_pps / in_pps).round() as usize).clamp(1, n - 1)
    } else {
        n - 1
    };
    let bin = args.bare_bin.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("bareforward")))
            .unwrap_or_else(|| PathBuf::from("bareforward"))
    });
    let out = tempfile::NamedTempFile::new()?;
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.args([
        "--publishers".to_owned(),
        publishers.to_string(),
        "--receivers".to_owned(),
        n.to_string(),
        "--fanout".to_owned(),
        fanout.to_string(),
        "--pps".to_owned(),
        format!("{pps:.1}"),
        "--size".to_owned(),
        size.to_string(),
        "--duration".to_owned(),
        args.duration.to_string(),
        "--warmup".to_owned(),
        args.warmup.min(5).to_string(),
        "--json".to_owned(),
        out.path().display().to_string(),
    ]);
    println!(
        "{} --publishers {publishers} --receivers {n} --fanout {fanout} --pps {pps:.1} --size {size} --duration {}",
        bin.display(),
        args.duration
    );
    let status = cmd
        .status()
        .await
        .with_context(|| format!("run {}", bin.display()))?;
    if !status.success() {
        bail!("{} failed: {status}", bin.display());
    }
    let text = std::fs::read_to_string(out.path())?;
    let mut r: Value = serde_json::from_str(&text).context("bareforward's JSON")?;
    r["bin"] = json!(bin.display().to_string());
    Ok(r)
}

/// One system's clients, joined, ready to be measured.
struct Measured<'a> {
    system: &'static str,
    clients: &'a [TestClient],
    ids: &'a [String],
    /// The measured process.
    pid: &'a str,
    /// The participant that joined first (left out of join times).
    first: usize,
    clock: &'a Arc<MediaClock>,
    /// The process's RSS before the first join.
    rss_before: u64,
    join_started: Instant,
    /// Whether join to first media means the same as for giaoban.
    join_times: bool,
    bin: String,
    /// The selective giao ban's scene (speakers, set_quality), driven
    /// during the measurement and checked in it.
    scene: Option<&'a Scene>,
}

/// Waits for every stream, warms up, measures the window; the report. With
/// a scene, it is driven (levels, set_quality) all along, every 200 ms.
async fn measure(args: &Args, planned: &[Planned], m: Measured<'_>) -> anyhow::Result<Value> {
    let (scene, clients) = (m.scene, m.clients);
    let drive = async {
        match scene {
            Some(scene) => loop {
                scene.tick(clients.iter().enumerate());
                tokio::time::sleep(Duration::from_millis(200)).await;
            },
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        r = measure_run(args, planned, m) => r,
        () = drive => unreachable!("the scene's loop does not end"),
    }
}

async fn measure_run(args: &Args, planned: &[Planned], m: Measured<'_>) -> anyhow::Result<Value> {
    let Measured {
        system,
        clients,
        ids,
        pid,
        first,
        clock,
        rss_before,
        join_started,
        join_times,
        bin,
        scene,
    } = m;
    let n = planned.len();
    let tck = clock_ticks_per_second();
    let started_at = std::time::SystemTime::now();
    let load_before = loadavg();
    // Every participant should receive every other publisher's media.
    let kinds: Vec<Kind> = [(args.audio, Kind::Audio), (args.video, Kind::Video)]
        .into_iter()
        .filter_map(|(on, k)| on.then_some(k))
        .collect();
    let expected_streams = |me: usize| -> Vec<(String, Kind)> {
        (0..n)
            .filter(|&j| j != me && planned[j].publish)
            .flat_map(|j| kinds.iter().map(move |k| (j, *k)))
            .map(|(j, k)| (ids[j].clone(), k))
            .collect()
    };
    // What a receiver still lacks. Selective: as many videos as last-N
    // gives it and some audio (which ones is checked in the window).
    let lacking = |i: usize, st: &ClientState| -> Vec<String> {
        match scene {
            None => expected_streams(i)
                .into_iter()
                .filter(|(p, k)| st.received(p, *k).packets == 0)
                .map(|(p, k)| format!("{p} {k:?}"))
                .collect(),
            Some(scene) => {
                let count = |kind: Kind| {
                    st.media
                        .iter()
                        .filter(|((p, k), m)| *k == kind && m.packets > 0 && *p != ids[i])
                        .count()
                };
                let want = scene.videos(n);
                let mut out = Vec::new();
                if args.video && count(Kind::Video) < want {
                    out.push(format!("videos ({} of {want})", count(Kind::Video)));
                }
                if args.audio && count(Kind::Audio) == 0 {
                    out.push("audio".to_owned());
                }
                out
            }
        }
    };
    let mesh_deadline = Instant::now() + MESH_TIMEOUT;
    let missing = loop {
        let missing: usize = clients
            .iter()
            .enumerate()
            .map(|(i, c)| lacking(i, &c.state()).len())
            .sum();
        if missing == 0 || Instant::now() >= mesh_deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let total_streams: usize = match scene {
        None => (0..n).map(|i| expected_streams(i).len()).sum(),
        // The readiness conditions: last-N's videos, some audio.
        Some(_) => n * (usize::from(args.video) + usize::from(args.audio)),
    };
    if missing > 0 {
        println!("WARNING: {missing} of {total_streams} expected streams never arrived");
        // Which: per receiver, the (sender, kind) it lacks.
        for (i, c) in clients.iter().enumerate() {
            let st = c.state();
            let lacking = lacking(i, &st);
            if !lacking.is_empty() {
                println!(
                    "  {} ({}) lacks {}; connections {:?}",
                    planned[i].name,
                    ids[i],
                    lacking.join(", "),
                    st.connection_states
                );
                // Its timeline without the meeting's chatter (the others'
                // tracks and joins): the connections' datagrams and states,
                // offers and answers; the start and the end.
                let relevant: Vec<_> = st
                    .timeline
                    .iter()
                    .filter(|(_, what)| {
                        !what.starts_with("server: ")
                            || ["offer", "answer", "error"]
                                .iter()
                                .any(|k| what.contains(k))
                    })
                    .collect();
                let (head, tail) = (60, 30);
                for (n, (t, what)) in relevant.iter().enumerate() {
                    if n == head && relevant.len() > head + tail {
                        println!("      ... {} more ...", relevant.len() - head - tail);
                    }
                    if n < head || n + tail >= relevant.len() {
                        println!("      {:>9.1} ms {what}", t.as_secs_f64() * 1000.0);
                    }
                }
            }
        }
    } else {
        println!(
            "all {total_streams} streams flow after {:.1} s; warming up {} s",
            join_started.elapsed().as_secs_f64(),
            args.warmup
        );
    }

    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let rss_after = proc_rss(pid)?;

    // The measurement window.
    let t0 = Instant::now();
    let s0 = snapshot(clients, pid)?;
    clock.start_window();
    // Selective: what each subscriber receives, checked in the middle of
    // every speaker's turn that lies in the window.
    let window_end = t0 + Duration::from_secs(args.duration);
    let checks = async {
        match scene {
            Some(scene) => scene.check_turns(clients, ids, t0, window_end).await,
            None => Vec::new(),
        }
    };
    let ((), checks) = tokio::join!(
        tokio::time::sleep(Duration::from_secs(args.duration)),
        checks
    );
    clock.end_window();
    let s1 = snapshot(clients, pid)?;
    let window = t0.elapsed().as_secs_f64();
    let load_after = loadavg();
    // Packets stamped in the window that are still on their way.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s2 = snapshot(clients, pid)?;

    // Expected receptions: each publisher's packets times its receivers.
    let receivers = n - 1;
    let sent = s1.sent - s0.sent;
    let received = s1.received - s0.received;
    let (expected, lost) = if scene.is_some() {
        // Selective: who receives what changes with the turns, so loss is
        // counted per received stream: gaps in each layer's packet counter.
        let lost = s2.window_gaps;
        ((s2.window_received as i64 + lost).max(0) as u64, lost)
    } else {
        let expected: u64 = s2.window_sent.iter().map(|s| s * receivers as u64).sum();
        (expected, expected as i64 - s2.window_received as i64)
    };
    let planned_in: f64 = if scene.is_some() {
        // The layers the server left on (layers_wanted), at the window's end.
        clients
            .iter()
            .zip(planned)
            .filter(|(_, p)| p.publish)
            .map(|(c, p)| planned_pps_layers(args, p.video_kbps, &c.state().layers_active))
            .sum()
    } else {
        planned
            .iter()
            .filter(|p| p.publish)
            .map(|p| planned_pps(args, p.video_kbps))
            .sum()
    };
    if (sent as f64 / window) < 0.95 * planned_in {
        println!(
            "WARNING: the clients sent {:.0} packets/s of the {planned_in:.0} planned: \
             the load generator did not get enough CPU",
            sent as f64 / window
        );
    }
    let server_cpu = (s1.server_ticks - s0.server_ticks) as f64 / tck;
    let self_cpu = (s1.self_ticks - s0.self_ticks) as f64 / tck;
    let machine_busy = (s1.machine.0 - s0.machine.0) as f64 / tck;
    let others_cpu = (machine_busy - server_cpu - self_cpu).max(0.0);

    let mut delays: Vec<u32> = Vec::new();
    let mut join_ms: Vec<f64> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let st = c.state();
        delays.extend_from_slice(&st.delays_us);
        if i != first && join_times {
            if let Some(d) = st.media.values().filter_map(|m| m.first_after).min() {
                join_ms.push(d.as_secs_f64() * 1000.0);
            }
        }
        for e in &st.errors {
            errors.push(format!("{}: {e}", planned[i].name));
        }
    }
    delays.sort_unstable();
    join_ms.sort_by(f64::total_cmp);
    let us = |p: f64| percentile(&delays, p).map(|d| f64::from(d) / 1000.0);
    let ms = |p: f64| percentile(&join_ms, p);
    let rss_per = (rss_after.saturating_sub(rss_before)) as f64 / n as f64;
    let cpu_per_pkt_us = if received > 0 {
        server_cpu * 1e6 / received as f64
    } else {
        f64::NAN
    };

    let date = time_string(started_at);
    let report = json!({
        "system": system,
        "label": args.label,
        "date_utc": date,
        "machine": machine_description(),
        "scenario": args.scenario.name(),
        "scenario_description": args.scenario.meeting_size().map(|_| giaoban_description(args)),
        "participants": n,
        "publishers": planned.iter().filter(|p| p.publish).count(),
        "video_kbps": args.video_kbps,
        "chair_video_kbps": args.scenario.meeting_size().map(|_| args.chair_video_kbps),
        "audio": args.audio,
        "video": args.video,
        "send_workers": args.send_workers,
        "shedding": shedding(args),
        "warmup_s": args.warmup,
        "window_s": window,
        "client_threads": args.threads,
        "streams_expected": total_streams,
        "streams_missing": missing,
        "in": {
            "planned_packets_per_s": planned_in,
            "packets_per_s": sent as f64 / window,
            "payload_bytes_per_s": (s1.sent_bytes - s0.sent_bytes) as f64 / window,
            "datagrams_per_s": (s1.wire_to_server.0 - s0.wire_to_server.0) as f64 / window,
            "wire_bytes_per_s": (s1.wire_to_server.1 - s0.wire_to_server.1) as f64 / window,
        },
        "out": {
            "packets_per_s": received as f64 / window,
            "payload_bytes_per_s": (s1.received_bytes - s0.received_bytes) as f64 / window,
            "datagrams_per_s": (s1.wire_from_server.0 - s0.wire_from_server.0) as f64 / window,
            "wire_bytes_per_s": (s1.wire_from_server.1 - s0.wire_from_server.1) as f64 / window,
        },
        "server_cpu_s": server_cpu,
        "server_cpu_cores": server_cpu / window,
        "server_cpu_us_per_forwarded_packet": cpu_per_pkt_us,
        "forwarding_delay_ms": {"p50": us(0.5), "p90": us(0.9), "p99": us(0.99), "max": us(1.0), "samples": delays.len()},
        "packets_expected": expected,
        "packets_received": s2.window_received,
        "packets_lost": lost,
        "loss_ratio": if expected > 0 { lost as f64 / expected as f64 } else { 0.0 },
        "udp_rcvbuf_errors": s2.udp_errors.0.saturating_sub(s0.udp_errors.0),
        "udp_sndbuf_errors": s2.udp_errors.1.saturating_sub(s0.udp_errors.1),
        "server_rss_before_bytes": rss_before,
        "server_rss_after_bytes": rss_after,
        "server_rss_per_participant_bytes": rss_per,
        "join_to_first_media_ms": {"p50": ms(0.5), "p99": ms(0.99), "max": ms(1.0), "samples": join_ms.len()},
        "loadgen_cpu_cores": self_cpu / window,
        "other_processes_cpu_cores": others_cpu / window,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "client_errors": errors.len(),
        "server_bin": bin,
    });
    // The selective giao ban (json! above is at its macro recursion limit).
    let extra = json!({
        "selective": scene.is_some(),
        "slots": args.slots,
        "last_n": scene.map(|s| s.last_n),
        "audio_loudest": scene.map(|s| s.audio_loudest),
        "talkers": scene.map(|s| s.talkers.len()),
        "speaker_every_s": scene.map(|s| s.every.as_secs_f64()),
        "selection_check": scene.map(|_| checks),
        "set_quality_requests": scene.map(|s| s.requests()),
        "keyframe_requests_seen": s1.keyframe_requests,
        "keyframes_on_request": s1.keyframes_on_request,
    });
    let mut report = report;
    if let (Some(r), Value::Object(extra)) = (report.as_object_mut(), extra) {
        r.extend(extra);
    }
    if !errors.is_empty() {
        println!("{system}: client errors (first 5 of {}):", errors.len());
        for e in errors.iter().take(5) {
            println!("  {e}");
        }
    }
    Ok(report)
}

fn server_bin_name(args: &Args) -> String {
    args.server_bin
        .clone()
        .unwrap_or_else(giaoban_tests::giaoban_bin)
        .display()
        .to_string()
}

fn print_table(r: &Value) {
    let f = |v: &Value| -> String {
        match v {
            Value::Null => "-".into(),
            Value::Number(n) => match n.as_f64() {
                Some(x) if x.fract() != 0.0 => format!("{x:.2}"),
                _ => n.to_string(),
            },
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    };
    let mb = |v: &Value| {
        v.as_f64()
            .map(|b| format!("{:.2} MB", b / 1e6))
            .unwrap_or_else(|| "-".into())
    };
    let mbit = |v: &Value| {
        v.as_f64()
            .map(|b| format!("{:.2} Mbit/s", b * 8.0 / 1e6))
            .unwrap_or_else(|| "-".into())
    };
    let rows: Vec<(&str, String)> = vec![
        ("system", f(&r["system"])),
        ("date", f(&r["date_utc"])),
        ("machine", f(&r["machine"])),
        ("scenario", f(&r["scenario"])),
        (
            "participants (publishing)",
            format!("{} ({})", f(&r["participants"]), f(&r["publishers"])),
        ),
        (
            "streams flowing",
            format!(
                "{} of {}",
                r["streams_expected"].as_u64().unwrap_or(0)
                    - r["streams_missing"].as_u64().unwrap_or(0),
                f(&r["streams_expected"])
            ),
        ),
        ("window", format!("{} s", f(&r["window_s"]))),
        (
            "in: packets/s (sent by clients / planned)",
            format!(
                "{} / {}",
                f(&r["in"]["packets_per_s"]),
                f(&r["in"]["planned_packets_per_s"])
            ),
        ),
        ("in: payload", mbit(&r["in"]["payload_bytes_per_s"])),
        ("in: on the wire (SRTP)", mbit(&r["in"]["wire_bytes_per_s"])),
        (
            "out: packets/s (received by clients)",
            f(&r["out"]["packets_per_s"]),
        ),
        ("out: payload", mbit(&r["out"]["payload_bytes_per_s"])),
        (
            "out: on the wire (SRTP)",
            mbit(&r["out"]["wire_bytes_per_s"]),
        ),
        ("server CPU", format!("{} cores", f(&r["server_cpu_cores"]))),
        (
            "server CPU per forwarded packet",
            format!("{} µs", f(&r["server_cpu_us_per_forwarded_packet"])),
        ),
        (
            "forwarding delay p50 / p99 / max",
            format!(
                "{} / {} / {} ms",
                f(&r["forwarding_delay_ms"]["p50"]),
                f(&r["forwarding_delay_ms"]["p99"]),
                f(&r["forwarding_delay_ms"]["max"])
            ),
        ),
        (
            "packets lost (expected - received)",
            format!(
                "{} of {} ({:.3} %)",
                f(&r["packets_lost"]),
                f(&r["packets_expected"]),
                r["loss_ratio"].as_f64().unwrap_or(0.0) * 100.0
            ),
        ),
        (
            "UDP buffer overflows (rcv / snd, machine)",
            format!(
                "{} / {}",
                f(&r["udp_rcvbuf_errors"]),
                f(&r["udp_sndbuf_errors"])
            ),
        ),
        (
            "server RSS before / after joins",
            format!(
                "{} / {}",
                mb(&r["server_rss_before_bytes"]),
                mb(&r["server_rss_after_bytes"])
            ),
        ),
        (
            "server RSS per participant",
            mb(&r["server_rss_per_participant_bytes"]),
        ),
        (
            "join to first media p50 / p99",
            format!(
                "{} / {} ms",
                f(&r["join_to_first_media_ms"]["p50"]),
                f(&r["join_to_first_media_ms"]["p99"])
            ),
        ),
        (
            "loadgen CPU / others' CPU",
            format!(
                "{} / {} cores",
                f(&r["loadgen_cpu_cores"]),
                f(&r["other_processes_cpu_cores"])
            ),
        ),
        (
            "load average before / after",
            format!("{} / {}", f(&r["loadavg_before"]), f(&r["loadavg_after"])),
        ),
        ("client errors", f(&r["client_errors"])),
    ];
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    println!();
    for (k, v) in rows {
        println!("{k:<width$}  {v}");
    }
    println!();
}

/// The selective giao ban's check of what every subscriber received.
fn print_checks(r: &Value) {
    let Some(checks) = r["selection_check"].as_array() else {
        return;
    };
    let kbps = |v: &Value| {
        v.as_f64()
            .map(|x| format!("{x:.0}"))
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "What each subscriber received (between 40 and 80 % of each speaker's turn in the window; \
         expected: last-N videos, the chair's and the speaker's at the high layer, the others low, \
         the loudest audios):"
    );
    if checks.is_empty() {
        println!("  no whole turn in the window (make --duration longer than --speaker-every)");
    }
    for c in checks {
        println!(
            "  turn {} (speaker {}, {}): {} of {} subscribers as the scenario says",
            c["turn"],
            c["speaker_name"].as_str().unwrap_or("-"),
            c["speaker"].as_str().unwrap_or("-"),
            c["as_the_scenario_says"],
            c["subscribers"]
        );
        if let Some(shapes) = c["shapes"].as_object() {
            for (shape, count) in shapes {
                println!("    {count} × {shape}");
            }
        }
        let k = &c["kbps_per_stream"];
        println!(
            "    payload per received stream: q {} / h {} / f {} kbit/s, audio {} kbit/s",
            kbps(&k["q"]),
            kbps(&k["h"]),
            kbps(&k["f"]),
            kbps(&k["audio"])
        );
        for m in c["mismatches"].as_array().into_iter().flatten() {
            println!("    not as expected: {}", m.as_str().unwrap_or("-"));
        }
    }
    println!(
        "set_quality requests {}; key frame requests seen by publishers {}, key frames sent for them \
         or for resumed layers {}\n",
        r["set_quality_requests"], r["keyframe_requests_seen"], r["keyframes_on_request"]
    );
}

/// giaoban and its references side by side, and the ratios.
fn print_comparison(r: &Value) {
    let num = |v: &Value, digits: usize| -> String {
        v.as_f64()
            .filter(|x| x.is_finite())
            .map(|x| format!("{x:.digits$}"))
            .unwrap_or_else(|| "-".into())
    };
    let g = r;
    let j = &r["references"]["janus"];
    let b = &r["references"]["bare"];
    let mbit = |v: &Value| {
        v.as_f64()
            .map(|x| format!("{:.1}", x * 8.0 / 1e6))
            .unwrap_or_else(|| "-".into())
    };
    let mb = |v: &Value| {
        v.as_f64()
            .map(|x| format!("{:.2}", x / 1e6))
            .unwrap_or_else(|| "-".into())
    };
    let lost = |v: &Value| -> String {
        match (v["packets_lost"].as_i64(), v["loss_ratio"].as_f64()) {
            (Some(l), Some(q)) => format!("{l} ({:.3} %)", q * 100.0),
            _ => "-".into(),
        }
    };
    let delay = |p50: &Value, p99: &Value| format!("{} / {}", num(p50, 2), num(p99, 1));
    let rows: Vec<(&str, String, String, String)> = vec![
        (
            "in: packets/s",
            num(&g["in"]["packets_per_s"], 0),
            num(&j["in"]["packets_per_s"], 0),
            num(&b["in_pps"], 0),
        ),
        (
            "out: packets/s (forwarded, received)",
            num(&g["out"]["packets_per_s"], 0),
            num(&j["out"]["packets_per_s"], 0),
            format!("{}, {}", num(&b["out_pps"], 0), num(&b["received_pps"], 0)),
        ),
        (
            "out: on the wire, Mbit/s",
            mbit(&g["out"]["wire_bytes_per_s"]),
            mbit(&j["out"]["wire_bytes_per_s"]),
            "-".into(),
        ),
        (
            "CPU, cores",
            num(&g["server_cpu_cores"], 3),
            num(&j["server_cpu_cores"], 3),
            num(&b["forwarder_cpu_cores"], 3),
        ),
        (
            "CPU per forwarded packet, µs",
            num(&g["server_cpu_us_per_forwarded_packet"], 2),
            num(&j["server_cpu_us_per_forwarded_packet"], 2),
            num(&b["cpu_us_per_forwarded_packet"], 2),
        ),
        (
            "delay p50 / p99, ms",
            delay(
                &g["forwarding_delay_ms"]["p50"],
                &g["forwarding_delay_ms"]["p99"],
            ),
            delay(
                &j["forwarding_delay_ms"]["p50"],
                &j["forwarding_delay_ms"]["p99"],
            ),
            delay(&b["delay_p50_ms"], &b["delay_p99_ms"]),
        ),
        ("packets lost", lost(g), lost(j), "-".into()),
        (
            "RSS per participant, MB",
            mb(&g["server_rss_per_participant_bytes"]),
            mb(&j["server_rss_per_participant_bytes"]),
            "-".into(),
        ),
        (
            "others' CPU, cores",
            num(&g["other_processes_cpu_cores"], 2),
            num(&j["other_processes_cpu_cores"], 2),
            "-".into(),
        ),
    ];
    println!("== comparison (same load)");
    println!(
        "{:<38} {:>16} {:>16} {:>16}",
        "", "giaoban", "janus", "bare forwarder"
    );
    for (k, a, bj, bb) in rows {
        println!("{k:<38} {a:>16} {bj:>16} {bb:>16}");
    }
    println!(
        "giaoban / bare: {}   giaoban / janus: {}  (CPU per forwarded packet)",
        num(&r["ratios"]["giaoban_over_bare"], 2),
        num(&r["ratios"]["giaoban_over_janus"], 2)
    );
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(51));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile::<u32>(&[], 0.5), None);
    }

    #[test]
    fn planned_rate_matches_the_client_sizing() {
        let args = Args::parse_from(["loadgen", "--keyframe-interval", "2"]);
        // 300 kbit/s: 1250-byte frames, 2 packets; key frames 5000 bytes, 5 packets.
        let expected = 50.0 + 30.0 * (2.0 * 59.0 + 5.0) / 60.0;
        assert!((planned_pps(&args, 300) - expected).abs() < 1e-9);
        let audio_only = Args::parse_from(["loadgen", "--video", "false"]);
        assert_eq!(planned_pps(&audio_only, 300), 50.0);
        // Simulcast: q and h of 300 kbit/s are one packet a frame (312 and
        // 625 bytes; key frames 2 and 3 packets).
        let layers = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let q = 30.0 * (59.0 + 2.0) / 60.0;
        let h = 30.0 * (59.0 + 3.0) / 60.0;
        assert!((planned_pps_layers(&args, 300, &layers(&["q"])) - (50.0 + q)).abs() < 1e-9);
        let all = planned_pps_layers(&args, 300, &layers(&["q", "h", "f"]));
        assert!((all - (expected + q + h)).abs() < 1e-9);
    }

    #[test]
    fn each_turn_has_one_loud_speaker_and_two_quieter_ones() {
        for scenario in ["giaoban100", "giaoban200"] {
            let args = Args::parse_from(["loadgen", "--scenario", scenario, "--scale", "0.3"]);
            let planned = plan(&args).unwrap();
            let scene = Scene::new(&args, &planned).unwrap();
            assert_eq!(scene.talkers.len(), 4);
            assert!(!scene.talkers.contains(&scene.chair));
            for turn in 0..8 {
                let levels: Vec<u8> = (0..planned.len()).map(|i| scene.level(turn, i)).collect();
                let count = |l: u8| levels.iter().filter(|x| **x == l).count();
                assert_eq!(count(LEVEL_SPEAKER), 1);
                assert_eq!(count(LEVEL_QUIET), 2);
                assert_eq!(count(LEVEL_SILENT), planned.len() - 3);
                // The speaker rotates; the previous one stays audible.
                let speaker = scene.talker(turn, 0);
                assert_eq!(scene.level(turn + 1, speaker), LEVEL_QUIET);
                assert_ne!(scene.talker(turn + 1, 0), speaker);
            }
            assert_eq!(scene.videos(planned.len()), 10);
        }
    }

    #[test]
    fn giao_ban_meetings_have_one_chair_and_their_bridge_points() {
        let count = |scenario: &str, scale: &str| {
            let args = Args::parse_from(["loadgen", "--scenario", scenario, "--scale", scale]);
            assert!(selective(&args));
            let planned = plan(&args).unwrap();
            assert_eq!(planned.iter().filter(|p| p.role == "chair").count(), 1);
            assert!(planned.iter().all(|p| p.publish));
            let chair = planned.iter().find(|p| p.role == "chair").unwrap();
            assert_eq!(chair.video_kbps, args.chair_video_kbps);
            planned.len()
        };
        assert_eq!(count("giaoban100", "1.0"), 99);
        assert_eq!(count("giaoban100", "0.3"), 30);
        assert_eq!(count("giaoban200", "1.0"), 200);
        assert_eq!(count("giaoban200", "0.1"), 20);
        assert_eq!(count("giaoban200", "0.5"), 100);
        let custom = Args::parse_from(["loadgen", "--publishers", "3"]);
        assert!(!selective(&custom));
        assert_eq!(plan(&custom).unwrap().len(), 3);
        let over = Args::parse_from(["loadgen", "--scenario", "giaoban200", "--scale", "1.5"]);
        assert!(plan(&over).is_err());
    }
}
