//! `rasp bench-net`: loopback message throughput between two `rasp` processes.
//!
//! The command starts a child `rasp bench-sink` process (a node whose `Sink` atom counts
//! messages and acknowledges every [`ACK_EVERY`]), then a node in its own process whose
//! `Source` atom sends `count` messages of `size` payload bytes to the sink's service,
//! keeping at most `window` unacknowledged (below the per-peer queue bound, so nothing is
//! dropped). Every message goes the whole way: encode on the executor, per-peer queue,
//! writer task, yamux/noise/TCP, reader task, executor, handler. It prints one JSON line.

use super::{config_error, runtime, ShutdownSignal};
use clap::Args;
use rasp_runtime::net::{Multiaddr, NetConfig, Node};
use rasp_runtime::{boot, Atom, AtomId, Ctx, Dest, Message, NodeId, PeerEvent, Time};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The sink acknowledges every this many messages.
pub const ACK_EVERY: u64 = 128;

/// `rasp bench-net` flags.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Messages to send.
    #[arg(long, default_value_t = 200_000)]
    pub count: u64,
    /// Payload bytes per message (comma-separated for several runs).
    #[arg(long, value_delimiter = ',', default_values_t = vec![16usize, 1024])]
    pub size: Vec<usize>,
    /// Most unacknowledged messages in flight (keep it below the peer queue bound, 1024).
    #[arg(long, default_value_t = 1000)]
    pub window: u64,
}

/// `rasp bench-sink` flags.
#[derive(Debug, Clone, Args)]
pub struct SinkArgs {
    /// Data directory of the sink node.
    #[arg(long)]
    pub data_dir: PathBuf,
}

/// MessagePack `bin` bytes (not an array of integers).
#[derive(Clone, Debug)]
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// One benchmark message.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Data {
    seq: u64,
    body: Bytes,
}
impl Message for Data {
    const KIND: &'static str = "bench/data";
}

/// Cumulative acknowledgement: `n` messages received so far.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ack {
    n: u64,
}
impl Message for Ack {
    const KIND: &'static str = "bench/ack";
}

/// Counts messages, acknowledges every [`ACK_EVERY`].
#[derive(Default)]
struct Sink {
    received: u64,
    acked: u64,
}

impl Atom for Sink {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        ctx.register("bench/sink").expect("one sink");
        ctx.on::<Data>(|me, ctx, from, _d| {
            me.received += 1;
            if me.received - me.acked >= ACK_EVERY {
                me.acked = me.received;
                ctx.send(from.from, Ack { n: me.received });
            }
        });
    }
}

/// Sends `count` messages to the sink with a window.
struct Source {
    sink: Option<NodeId>,
    count: u64,
    size: usize,
    window: u64,
    sent: u64,
    acked: u64,
    started: Option<Time>,
    finished: Option<Time>,
}

impl Source {
    fn pump(&mut self, ctx: &mut Ctx<Self>) {
        let Some(sink) = self.sink else { return };
        if self.started.is_none() {
            self.started = Some(ctx.now());
        }
        while self.sent < self.count && self.sent - self.acked < self.window {
            ctx.send(
                Dest::service(sink, "bench/sink"),
                Data {
                    seq: self.sent,
                    body: Bytes(vec![0xab; self.size]),
                },
            );
            self.sent += 1;
        }
    }
}

impl Atom for Source {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        ctx.on_peer(|me, ctx, ev| {
            if let PeerEvent::Up(n) = ev {
                if me.sink.is_none() {
                    me.sink = Some(n);
                    me.pump(ctx);
                }
            }
        });
        ctx.on::<Ack>(|me, ctx, _from, Ack { n }| {
            me.acked = me.acked.max(n);
            // The sink acknowledges in batches; the last partial batch is covered by
            // rounding the target down to a multiple of ACK_EVERY.
            if me.acked >= me.count - me.count % ACK_EVERY && me.finished.is_none() {
                me.finished = Some(ctx.now());
            }
            me.pump(ctx);
        });
    }
}

/// The result of one run.
#[derive(Debug, Serialize)]
struct BenchResult {
    bench: &'static str,
    size: usize,
    messages: u64,
    seconds: f64,
    msgs_per_sec: f64,
    payload_mb_per_sec: f64,
    dropped: u64,
}

fn bench_cfg(dir: PathBuf) -> NetConfig {
    NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")],
        data_dir: dir,
        ..NetConfig::default()
    }
}

/// Runs the hidden sink side: prints `listen=<addr>` and runs until SIGTERM or stdin closes.
pub fn run_sink(args: SinkArgs) -> ExitCode {
    runtime().block_on(async move {
        let signals = ShutdownSignal::install();
        let node = match Node::start(
            bench_cfg(args.data_dir),
            boot(|b| {
                b.spawn(Sink::default());
            }),
        )
        .await
        {
            Ok(n) => n,
            Err(e) => {
                eprintln!("rasp bench-sink: {e}");
                return ExitCode::FAILURE;
            }
        };
        for a in node.listen_addrs() {
            println!("listen={a}");
        }
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let mut s = String::new();
            while std::io::stdin()
                .read_line(&mut s)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
        });
        tokio::select! {
            _ = signals.wait() => {}
            _ = stdin_closed => {}
        }
        node.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Runs `rasp bench-net`.
pub fn run(args: BenchArgs) -> ExitCode {
    if args.count < ACK_EVERY || args.window == 0 {
        return config_error(format!(
            "--count must be at least {ACK_EVERY} and --window positive"
        ));
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("rasp bench-net: cannot find own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let base = std::env::temp_dir().join(format!("rasp-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let mut ok = true;
    for (i, &size) in args.size.iter().enumerate() {
        match run_one(&exe, &base.join(format!("run{i}")), size, &args) {
            Ok(r) => println!("{}", serde_json::to_string(&r).expect("json")),
            Err(e) => {
                eprintln!("rasp bench-net: {e}");
                ok = false;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&base);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_one(
    exe: &std::path::Path,
    dir: &std::path::Path,
    size: usize,
    args: &BenchArgs,
) -> Result<BenchResult, String> {
    let mut child = std::process::Command::new(exe)
        .arg("bench-sink")
        .arg("--data-dir")
        .arg(dir.join("sink"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start sink: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let mut addr: Option<Multiaddr> = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if let Some(a) = line.strip_prefix("listen=") {
            addr = a.parse().ok();
            break;
        }
    }
    let result = match addr {
        Some(addr) => runtime().block_on(source(addr, dir.join("source"), size, args)),
        None => Err("sink printed no address".to_string()),
    };
    drop(child.stdin.take()); // the sink exits when its stdin closes
    let _ = child.wait();
    result
}

async fn source(
    sink: Multiaddr,
    dir: PathBuf,
    size: usize,
    args: &BenchArgs,
) -> Result<BenchResult, String> {
    let mut cfg = bench_cfg(dir);
    cfg.join = vec![sink];
    let (count, window) = (args.count, args.window);
    let node = Node::start(
        cfg,
        boot(move |b| {
            b.spawn(Source {
                sink: None,
                count,
                size,
                window,
                sent: 0,
                acked: 0,
                started: None,
                finished: None,
            });
        }),
    )
    .await
    .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let span = loop {
        let state = node
            .call(|h, _| h.with_atom::<Source, _>(AtomId(0), |s| (s.started, s.finished)))
            .await
            .flatten();
        if let Some((Some(a), Some(b))) = state {
            break b - a;
        }
        if Instant::now() > deadline {
            node.shutdown().await;
            return Err("benchmark did not finish in 300 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let dropped = node.stats().total().dropped;
    node.shutdown().await;
    let messages = count - count % ACK_EVERY;
    let secs = span.as_secs_f64();
    Ok(BenchResult {
        bench: "net-loopback",
        size,
        messages,
        seconds: secs,
        msgs_per_sec: messages as f64 / secs,
        payload_mb_per_sec: (messages as f64 * size as f64) / secs / 1e6,
        dropped,
    })
}
