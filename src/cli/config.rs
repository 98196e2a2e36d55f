//! Node settings from flags, `RASP_*` environment variables and a TOML file.
//!
//! Precedence: flag > environment > file > default ([`NetConfig::default`]). Everything is
//! validated once, before the node starts: an unparsable address, an unknown or mistyped
//! TOML key, an unreadable cluster key file all stop `rasp` with a message naming the
//! setting and exit code 2.
//!
//! The TOML file (`--config` / `RASP_CONFIG`) takes the same settings, flag names with
//! underscores; relative paths in it are relative to the file's directory:
//!
//! ```toml
//! listen = ["/ip4/0.0.0.0/tcp/7070"]
//! data_dir = "data"
//! join = ["/ip4/10.0.0.1/tcp/7070/p2p/12D3KooW..."]
//! psk_file = "cluster.psk"
//! max_frame_bytes = 4194304
//! peer_queue_capacity = 1024
//! inbound_queue_capacity = 4096
//! max_connections = 1024
//! ping_interval_ms = 2000
//! ping_timeout_ms = 6000
//! membership = "hyparview"   # or "full", "client-server"
//! role = "server"            # "server" or "client" (the app's role; the topology under client-server)
//! reset_store = false        # see --reset-store
//! # nodes of an app (crate::app::node) only:
//! index = 0
//! sync = "delta-bp-rr"
//! sync_interval_ms = 1000
//! http = "127.0.0.1:8080"    # the HTTP API (rasp::http); beyond loopback needs a token file
//! http_token_file = "http.token"
//! no_http = false
//! ```

use clap::Args;
use rasp_membership::{Mode, Role};
use rasp_runtime::net::identity::node_id_bits;
use rasp_runtime::net::{Multiaddr, NetConfig, PeerId};
use rasp_runtime::{Contact, NodeId};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Network flags shared by every command that starts a node.
#[derive(Debug, Clone, Default, Args)]
pub struct NetArgs {
    /// Address to listen on (repeatable, or comma-separated in the environment)
    /// [default: /ip4/0.0.0.0/tcp/0]
    #[arg(
        long,
        env = "RASP_LISTEN",
        value_delimiter = ',',
        value_name = "MULTIADDR"
    )]
    pub listen: Vec<Multiaddr>,
    /// Directory for the node key and the store [default: ./rasp-data]
    #[arg(long, env = "RASP_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of a node to join (repeatable, or comma-separated in the environment)
    #[arg(
        long,
        env = "RASP_JOIN",
        value_delimiter = ',',
        value_name = "MULTIADDR"
    )]
    pub join: Vec<Multiaddr>,
    /// Pre-shared cluster key file (/key/swarm/psk/1.0.0/ format); only nodes with the
    /// same key can connect
    #[arg(long, env = "RASP_PSK_FILE", value_name = "PATH")]
    pub psk_file: Option<PathBuf>,
    /// TOML file with these settings (flags and environment override it)
    #[arg(long, env = "RASP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Largest accepted message frame in bytes [default: 4194304]
    #[arg(long, env = "RASP_MAX_FRAME_BYTES", value_name = "BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Messages queued per peer before the oldest is dropped [default: 1024]
    #[arg(long, env = "RASP_PEER_QUEUE_CAPACITY", value_name = "N")]
    pub peer_queue_capacity: Option<usize>,
    /// If this node has run before (its node.key exists) but its store is missing, empty or
    /// damaged, move the bad file aside (store.redb.lost-N) and start with an empty store
    /// instead of refusing to start. No effect on a healthy store
    #[arg(
        long,
        env = "RASP_RESET_STORE",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub reset_store: bool,
}

/// The TOML file's shape. Unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See `--listen`.
    pub listen: Option<Vec<String>>,
    /// See `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// See `--join`.
    pub join: Option<Vec<String>>,
    /// See `--psk-file`.
    pub psk_file: Option<PathBuf>,
    /// See `--max-frame-bytes`.
    pub max_frame_bytes: Option<usize>,
    /// See `--peer-queue-capacity`.
    pub peer_queue_capacity: Option<usize>,
    /// [`NetConfig::inbound_queue_capacity`].
    pub inbound_queue_capacity: Option<usize>,
    /// [`NetConfig::command_queue_capacity`].
    pub command_queue_capacity: Option<usize>,
    /// [`NetConfig::max_connections`].
    pub max_connections: Option<usize>,
    /// [`NetConfig::ping_interval`] in milliseconds.
    pub ping_interval_ms: Option<u64>,
    /// [`NetConfig::ping_timeout`] in milliseconds.
    pub ping_timeout_ms: Option<u64>,
    /// [`NetConfig::idle_connection_timeout`] in milliseconds.
    pub idle_connection_timeout_ms: Option<u64>,
    /// [`NetConfig::peer_retry_for`] in milliseconds.
    pub peer_retry_for_ms: Option<u64>,
    /// See `--membership`.
    pub membership: Option<String>,
    /// See `--role`.
    pub role: Option<String>,
    /// See `--reset-store`.
    pub reset_store: Option<bool>,
    /// An app node's index (`--index`, see [`crate::app::node`]).
    pub index: Option<u32>,
    /// An app node's sync mode (`--sync`, see [`crate::app::node`]).
    pub sync: Option<String>,
    /// An app node's sync interval (`--sync-interval-ms`, see [`crate::app::node`]).
    pub sync_interval_ms: Option<u64>,
    /// See `--http`.
    pub http: Option<String>,
    /// See `--no-http`.
    pub no_http: Option<bool>,
    /// See `--http-token-file`.
    pub http_token_file: Option<PathBuf>,
}

/// Resolves the HTTP API settings ([`crate::http::resolve`]) with the TOML file's `http`,
/// `no_http` and `http_token_file` keys (a relative token path is relative to the file).
pub fn resolve_http(
    args: &crate::http::HttpArgs,
    config_file: Option<&Path>,
) -> crate::Result<Option<crate::http::HttpConfig>> {
    let file = match config_file {
        Some(p) => {
            let f = FileConfig::load(p)?;
            let base = p.parent().unwrap_or(Path::new("."));
            crate::http::HttpFile {
                http: f.http,
                no_http: f.no_http,
                http_token_file: f.http_token_file.map(|t| {
                    if t.is_absolute() {
                        t
                    } else {
                        base.join(t)
                    }
                }),
            }
        }
        None => crate::http::HttpFile::default(),
    };
    crate::http::resolve(args, &file)
}

/// Membership flags of `rasp node`.
#[derive(Debug, Clone, Default, Args)]
pub struct MembershipArgs {
    /// Membership protocol: full, client-server or hyparview [default: hyparview]
    #[arg(long, env = "RASP_MEMBERSHIP", value_name = "MODE")]
    pub membership: Option<Mode>,
    /// This node's role: server or client [default: server]. The app sees it in every
    /// membership mode; client-server membership also builds its topology from it, so
    /// switching modes is one flag
    #[arg(long, env = "RASP_ROLE", value_name = "ROLE")]
    pub role: Option<Role>,
}

/// Resolves the membership configuration: flag > environment > the TOML file's
/// `membership` / `role` keys > default (HyParView; role server). Protocol parameters keep
/// their defaults ([`rasp_membership::Config::default`]).
pub fn resolve_membership(
    args: &MembershipArgs,
    config_file: Option<&Path>,
) -> crate::Result<rasp_membership::Config> {
    let file = match config_file {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let in_file = |what: &str, e: rasp_membership::Error| match config_file {
        Some(p) => format!("config file {}: {what}: {e}", p.display()),
        None => e.to_string(),
    };
    let mode = match (args.membership, &file.membership) {
        (Some(m), _) => m,
        (None, Some(s)) => s.parse().map_err(|e| in_file("membership", e))?,
        (None, None) => Mode::default(),
    };
    let role = match (args.role, &file.role) {
        (Some(r), _) => r,
        (None, Some(s)) => s.parse().map_err(|e| in_file("role", e))?,
        (None, None) => Role::default(),
    };
    let cfg = rasp_membership::Config {
        mode,
        role,
        ..rasp_membership::Config::default()
    };
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

/// The membership seed of a `--join` address: the node id derived from its `/p2p/<peer id>`
/// part (as the network runtime derives node ids, [`node_id_bits`]) and the address itself.
/// An address without `/p2p/` is an error: membership needs to know who it joins.
pub fn seed_contact(addr: &Multiaddr) -> crate::Result<Contact> {
    let text = addr.to_string();
    let peer = text
        .rsplit_once("/p2p/")
        .map(|(_, tail)| tail.split('/').next().unwrap_or_default())
        .ok_or_else(|| {
            format!(
                "join address {text} has no /p2p/<peer id> suffix; use the full address a \
                 node prints at start (listen=...)"
            )
        })?;
    let peer: PeerId = peer
        .parse()
        .map_err(|e| format!("join address {text}: bad peer id {peer:?}: {e}"))?;
    Ok(Contact {
        node: NodeId(node_id_bits(&peer)),
        addrs: vec![text],
    })
}

/// The largest config file read (64 KiB; rasp's own are under 2 KiB). The TOML parser holds
/// up to about 100 bytes per input byte on deeply nested input, so a larger file is refused
/// before it is read whole or parsed (README, "Bad input").
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Reads a config file's text, refusing a file larger than [`MAX_CONFIG_BYTES`] (at most that
/// many bytes plus one are read) or not UTF-8; errors name the file.
pub fn read_config_text(path: &Path) -> crate::Result<String> {
    use std::io::Read;
    let context = || format!("cannot read config file {}", path.display());
    let file = std::fs::File::open(path).map_err(|e| crate::Error::io(context(), e))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| crate::Error::io(context(), e))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(crate::Error::Message(format!(
            "config file {} is larger than the limit of {} KiB; is it the right file?",
            path.display(),
            MAX_CONFIG_BYTES / 1024
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        crate::Error::decode(
            format!("config file {} is not UTF-8 text", path.display()),
            e,
        )
    })
}

impl FileConfig {
    /// Reads and parses a TOML file (unknown keys rejected; at most [`MAX_CONFIG_BYTES`]).
    pub fn load(path: &Path) -> crate::Result<FileConfig> {
        let text = read_config_text(path)?;
        toml::from_str(&text)
            .map_err(|e| crate::Error::decode(format!("config file {}", path.display()), e))
    }
}

fn parse_addrs(what: &str, file: &Path, v: &[String]) -> Result<Vec<Multiaddr>, String> {
    v.iter()
        .map(|s| {
            s.parse().map_err(|e| {
                format!(
                    "config file {}: invalid {what} address {s:?}: {e}",
                    file.display()
                )
            })
        })
        .collect()
}

/// Merges flags/environment (already merged by clap), the file and defaults into a
/// validated [`NetConfig`].
pub fn resolve(args: &NetArgs) -> crate::Result<NetConfig> {
    let (file, base) = match &args.config {
        Some(p) => (
            FileConfig::load(p)?,
            p.parent().unwrap_or(Path::new(".")).to_path_buf(),
        ),
        None => (FileConfig::default(), PathBuf::from(".")),
    };
    let file_path = args.config.clone().unwrap_or_default();
    let rel = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            base.join(p)
        }
    };
    let mut cfg = NetConfig::default();

    if !args.listen.is_empty() {
        cfg.listen = args.listen.clone();
    } else if let Some(l) = &file.listen {
        cfg.listen = parse_addrs("listen", &file_path, l)?;
    }
    if let Some(d) = &args.data_dir {
        cfg.data_dir = d.clone();
    } else if let Some(d) = &file.data_dir {
        cfg.data_dir = rel(d);
    }
    if !args.join.is_empty() {
        cfg.join = args.join.clone();
    } else if let Some(j) = &file.join {
        cfg.join = parse_addrs("join", &file_path, j)?;
    }
    cfg.psk_file = args
        .psk_file
        .clone()
        .or_else(|| file.psk_file.as_ref().map(rel));
    if let Some(v) = args.max_frame_bytes.or(file.max_frame_bytes) {
        cfg.max_frame_bytes = v;
    }
    if let Some(v) = args.peer_queue_capacity.or(file.peer_queue_capacity) {
        cfg.peer_queue_capacity = v;
    }
    if let Some(v) = file.inbound_queue_capacity {
        cfg.inbound_queue_capacity = v;
    }
    if let Some(v) = file.command_queue_capacity {
        cfg.command_queue_capacity = v;
    }
    if let Some(v) = file.max_connections {
        cfg.max_connections = v;
    }
    let ms = Duration::from_millis;
    if let Some(v) = file.ping_interval_ms {
        cfg.ping_interval = ms(v);
    }
    if let Some(v) = file.ping_timeout_ms {
        cfg.ping_timeout = ms(v);
    }
    if let Some(v) = file.idle_connection_timeout_ms {
        cfg.idle_connection_timeout = ms(v);
    }
    if let Some(v) = file.peer_retry_for_ms {
        cfg.peer_retry_for = ms(v);
    }
    // A flag: set by the command line, the environment or the file, whichever says so.
    cfg.reset_store = args.reset_store || file.reset_store.unwrap_or(false);
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str, body: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rasp-cli-cfg-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("rasp.toml");
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn defaults_with_nothing_given() {
        let cfg = resolve(&NetArgs::default()).unwrap();
        assert_eq!(cfg, NetConfig::default());
    }

    #[test]
    fn flag_beats_file_beats_default() {
        let p = tmp(
            "prec",
            "listen = [\"/ip4/127.0.0.1/tcp/7000\"]\ndata_dir = \"d\"\nmax_frame_bytes = 1000\n",
        );
        let args = NetArgs {
            config: Some(p.clone()),
            listen: vec!["/ip4/127.0.0.1/tcp/7001".parse().unwrap()],
            ..NetArgs::default()
        };
        let cfg = resolve(&args).unwrap();
        assert_eq!(cfg.listen[0].to_string(), "/ip4/127.0.0.1/tcp/7001");
        assert_eq!(cfg.data_dir, p.parent().unwrap().join("d"));
        assert_eq!(cfg.max_frame_bytes, 1000);
        assert!(!cfg.reset_store);
        let p = tmp("reset", "reset_store = true\n");
        let cfg = resolve(&NetArgs {
            config: Some(p),
            ..NetArgs::default()
        })
        .unwrap();
        assert!(cfg.reset_store);
        assert_eq!(
            cfg.peer_queue_capacity,
            NetConfig::default().peer_queue_capacity
        );
    }

    #[test]
    fn unknown_key_and_bad_address_are_errors() {
        let p = tmp("unknown", "listn = []\n");
        let e = resolve(&NetArgs {
            config: Some(p),
            ..NetArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field") && e.contains("listn"), "{e}");
        let p = tmp("badaddr", "join = [\"not-an-addr\"]\n");
        let e = resolve(&NetArgs {
            config: Some(p),
            ..NetArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("invalid join address"), "{e}");
    }

    #[test]
    fn membership_flag_beats_file_beats_default() {
        let none = MembershipArgs::default();
        let d = resolve_membership(&none, None).unwrap();
        assert_eq!((d.mode, d.role), (Mode::HyParView, Role::Server));
        let p = tmp(
            "membership",
            "membership = \"client-server\"\nrole = \"client\"\n",
        );
        let f = resolve_membership(&none, Some(&p)).unwrap();
        assert_eq!((f.mode, f.role), (Mode::ClientServer, Role::Client));
        let flags = MembershipArgs {
            membership: Some(Mode::Full),
            role: None,
        };
        let c = resolve_membership(&flags, Some(&p)).unwrap();
        assert_eq!((c.mode, c.role), (Mode::Full, Role::Client));
        let p = tmp("badmode", "membership = \"ring\"\n");
        let e = resolve_membership(&none, Some(&p)).unwrap_err().to_string();
        assert!(e.contains("membership") && e.contains("\"ring\""), "{e}");
    }

    #[test]
    fn seeds_take_their_node_id_from_the_p2p_suffix() {
        let peer = PeerId::random();
        let a: Multiaddr = format!("/ip4/127.0.0.1/tcp/7000/p2p/{peer}")
            .parse()
            .unwrap();
        let c = seed_contact(&a).unwrap();
        assert_eq!(c.node, NodeId(node_id_bits(&peer)));
        assert_eq!(c.addrs, vec![a.to_string()]);
        let e = seed_contact(&"/ip4/127.0.0.1/tcp/7000".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("/p2p/"), "{e}");
    }
}
