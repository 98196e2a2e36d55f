//! An execution as a ShiViz log (Beschastnikh et al., *Debugging Distributed Systems*,
//! CACM 59(8), 2016; the log format of ShiViz's "input" page): two lines per event, its
//! description, then the host and its vector clock as JSON, which ShiViz's default regular
//! expression `(?<event>.*)\n(?<host>\S*) (?<clock>{.*})` reads as it is.
//!
//! Clocks: each event on node `n` ticks `n`'s own entry; a delivery also takes the
//! entry-wise maximum with the sender's clock right after the event that sent the message.
//! Events of no node (a partition, a heal) are left out: they happen on no process.

use crate::app::log::ExecLog;
use std::fmt::Write;

/// The ShiViz log of `log` (see the module docs).
pub fn log(log: &ExecLog) -> String {
    let n = log.nodes as usize;
    let mut clocks = vec![vec![0u64; n]; n];
    // The sender's clock after each message's send event, filled as the events go by.
    let mut sent: Vec<Option<Vec<u64>>> = vec![None; log.messages.len()];
    let mut next_msg = 0usize;
    let mut out = String::new();
    for e in &log.events {
        if let Some(node) = e.node.map(|x| x as usize).filter(|&x| x < n) {
            if let Some(k) = e.msg {
                if let Some(Some(c)) = sent.get(k) {
                    for (mine, theirs) in clocks[node].iter_mut().zip(c) {
                        *mine = (*mine).max(*theirs);
                    }
                }
            }
            clocks[node][node] += 1;
            let desc = if e.detail.is_empty() {
                format!("{} {}", e.i, e.label)
            } else {
                format!("{} {} {}", e.i, e.label, e.detail)
            };
            out.push_str(&desc.replace('\n', " "));
            out.push('\n');
            let _ = write!(out, "n{node} {{");
            let mut first = true;
            for (j, c) in clocks[node].iter().enumerate().filter(|(_, c)| **c > 0) {
                let _ = write!(out, "{}\"n{j}\":{c}", if first { "" } else { "," });
                first = false;
            }
            out.push_str("}\n");
        }
        while next_msg < log.messages.len() && log.messages[next_msg].sent_i <= e.i {
            let m = &log.messages[next_msg];
            if m.sent_i == e.i {
                let from = m.id.from.0 as usize;
                if from < n {
                    sent[next_msg] = Some(clocks[from].clone());
                }
            }
            next_msg += 1;
        }
    }
    out
}
