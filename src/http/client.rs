//! `rasp var`: the command-line client of a node's HTTP API (see [`super`]).
//!
//! ```sh
//! rasp var declare --node 127.0.0.1:8080 cart orset
//! rasp var set     --node 127.0.0.1:8080 cart '{"add": "milk"}'
//! rasp var get     --node 127.0.0.1:8080 cart
//! rasp var read    --node 127.0.0.1:8080 cart --threshold '{"cardinality": 2}' --timeout-ms 5000
//! rasp var watch   --node 127.0.0.1:8080 cart --count 3
//! rasp var list    --node 127.0.0.1:8080
//! ```
//!
//! Each answer is printed as one JSON line on stdout (`watch`: one line per change). An error
//! answer prints `rasp: <status>: <message>` on stderr and exits 1; a bad command line exits 2.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Where the node's API is, and its token.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// The node's HTTP address, as printed in its `http=` start line (host:port or a URL)
    #[arg(long, env = "RASP_VAR_NODE", value_name = "ADDR")]
    pub node: String,
    /// File holding the node's bearer token
    #[arg(long, env = "RASP_VAR_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

/// `rasp var` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum VarCommand {
    /// Print a variable: type, size in bytes, value
    Get {
        /// Where the node is.
        #[command(flatten)]
        target: Target,
        /// The variable.
        id: String,
    },
    /// Update a variable with a JSON operation, e.g. '{"add": "milk"}' or '{"inc": 3}'
    Set {
        /// Where the node is.
        #[command(flatten)]
        target: Target,
        /// The variable.
        id: String,
        /// The operation (JSON).
        op: String,
    },
    /// Wait until a threshold holds on a variable, then print it
    Read {
        /// Where the node is.
        #[command(flatten)]
        target: Target,
        /// The variable.
        id: String,
        /// The threshold (JSON, e.g. 3 or '{"contains": "milk"}'; default: not bottom)
        #[arg(long)]
        threshold: Option<String>,
        /// Give up after this many milliseconds (the node's default: 30000)
        #[arg(long)]
        timeout_ms: Option<u64>,
    },
    /// Print the variable now and at every change (one JSON line each)
    Watch {
        /// Where the node is.
        #[command(flatten)]
        target: Target,
        /// The variable.
        id: String,
        /// Stop after this many lines
        #[arg(long)]
        count: Option<u64>,
    },
    /// Declare a variable of a type (orset, gcounter, pncounter, lwwregister, ...)
    Declare {
        /// Where the node is.
        #[command(flatten)]
        target: Target,
        /// The variable.
        id: String,
        /// Its type.
        r#type: String,
    },
    /// List the node's variables
    List {
        /// Where the node is.
        #[command(flatten)]
        target: Target,
    },
}

/// `rasp var` flags.
#[derive(Debug, Clone, Args)]
pub struct VarArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: VarCommand,
}

fn base_url(node: &str) -> String {
    let n = node.trim_end_matches('/');
    if n.starts_with("http://") || n.starts_with("https://") {
        n.to_string()
    } else {
        format!("http://{n}")
    }
}

/// Percent-encodes a path segment or query value (everything but unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("rasp: {msg}");
    ExitCode::FAILURE
}

/// Runs `rasp var`.
pub fn run(args: VarArgs) -> ExitCode {
    let target = match &args.command {
        VarCommand::Get { target, .. }
        | VarCommand::Set { target, .. }
        | VarCommand::Read { target, .. }
        | VarCommand::Watch { target, .. }
        | VarCommand::Declare { target, .. }
        | VarCommand::List { target } => target.clone(),
    };
    let token = match &target.token_file {
        Some(p) => match super::read_token(p) {
            Ok(t) => Some(t),
            Err(e) => return crate::cli::config_error(e),
        },
        None => None,
    };
    let base = base_url(&target.node);
    crate::cli::runtime().block_on(async move {
        let client = match reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
        {
            Ok(c) => c,
            Err(e) => return fail(format!("HTTP client: {e}")),
        };
        let auth = |r: reqwest::RequestBuilder| match &token {
            Some(t) => r.bearer_auth(t),
            None => r,
        };
        let var = |id: &str| format!("{base}/vars/{}", encode(id));
        let request = match &args.command {
            VarCommand::Get { id, .. } => client.get(var(id)),
            VarCommand::List { .. } => client.get(format!("{base}/vars")),
            VarCommand::Set { id, op, .. } => {
                if let Err(e) = serde_json::from_str::<serde_json::Value>(op) {
                    return crate::cli::config_error(format!("the operation is not JSON: {e}"));
                }
                client.post(var(id)).body(op.clone())
            }
            VarCommand::Declare { id, r#type, .. } => client
                .put(var(id))
                .body(serde_json::json!({ "type": r#type }).to_string()),
            VarCommand::Read {
                id,
                threshold,
                timeout_ms,
                ..
            } => {
                let mut q = Vec::new();
                if let Some(t) = threshold {
                    q.push(format!("threshold={}", encode(t)));
                }
                if let Some(ms) = timeout_ms {
                    q.push(format!("timeout_ms={ms}"));
                }
                let url = format!("{}/read?{}", var(id), q.join("&"));
                client.get(url)
            }
            VarCommand::Watch { id, .. } => client.get(format!("{}/watch", var(id))),
        };
        let mut resp = match auth(request).send().await {
            Ok(r) => r,
            Err(e) => return fail(format!("cannot reach {base}: {e}")),
        };
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let msg = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(String::from))
                .unwrap_or(body);
            return fail(format!("{status}: {msg}"));
        }
        if let VarCommand::Watch { count, .. } = &args.command {
            // Server-sent events: print the data of each event, one JSON line.
            let mut seen = 0u64;
            let mut buf = String::new();
            loop {
                match resp.chunk().await {
                    Ok(Some(bytes)) => {
                        buf.push_str(&String::from_utf8_lossy(&bytes));
                        while let Some(i) = buf.find('\n') {
                            let line: String = buf.drain(..=i).collect();
                            if let Some(data) = line.trim_end().strip_prefix("data:") {
                                println!("{}", data.trim_start());
                                seen += 1;
                                if count.is_some_and(|c| seen >= c) {
                                    return ExitCode::SUCCESS;
                                }
                            }
                        }
                    }
                    Ok(None) => return ExitCode::SUCCESS,
                    Err(e) => return fail(format!("watch stream: {e}")),
                }
            }
        }
        match resp.text().await {
            Ok(t) => {
                println!("{}", t.trim_end());
                ExitCode::SUCCESS
            }
            Err(e) => fail(format!("reading the answer: {e}")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(base_url("127.0.0.1:80"), "http://127.0.0.1:80");
        assert_eq!(base_url("http://h:1/"), "http://h:1");
        assert_eq!(encode("ads/rovio"), "ads%2Frovio");
        assert_eq!(encode("{\"a\":1}"), "%7B%22a%22%3A1%7D");
    }
}
