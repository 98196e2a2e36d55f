//! Overlay checks, what Lasp's Sprinter did (talk slides 122–129): gather every node's view and
//! report whether the graph is connected, which nodes are isolated, which links are asymmetric
//! ("I know you but you don't know me"), and the degree histogram; export as JSON or Graphviz DOT.
//!
//! ```
//! use rasp_membership::overlay::Overlay;
//! let mut o = Overlay::new();
//! o.insert(1u64, vec![2]);
//! o.insert(2, vec![1, 3]);
//! o.insert(3, vec![]);
//! let r = o.report();
//! assert!(r.connected);
//! assert_eq!(r.asymmetric, vec![(2, 3)]);
//! assert!(r.isolated.is_empty()); // 3 has a link, even if one-sided
//! assert!(o.to_dot().contains("\"2\" -> \"3\" [color=red]"));
//! ```

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Display;

/// Every node's view of its neighbours (the active view under HyParView).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlay<P: Ord> {
    /// Node → the neighbours it lists.
    pub views: BTreeMap<P, Vec<P>>,
}

/// What [`Overlay::report`] finds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report<P> {
    /// Nodes reporting a view.
    pub nodes: usize,
    /// Distinct undirected links.
    pub links: usize,
    /// Whether the undirected graph over the reporting nodes is one component.
    pub connected: bool,
    /// Connected components, largest first (sizes).
    pub components: Vec<usize>,
    /// Nodes with no link in either direction.
    pub isolated: Vec<P>,
    /// `(a, b)`: `a` lists `b` but `b` does not list `a` (or `b` reported no view).
    pub asymmetric: Vec<(P, P)>,
    /// Out-degree → number of nodes with it.
    pub degree_histogram: BTreeMap<usize, usize>,
}

impl<P: Ord + Clone> Overlay<P> {
    /// An empty overlay.
    pub fn new() -> Self {
        Overlay {
            views: BTreeMap::new(),
        }
    }

    /// Records `node`'s view (replacing an earlier one).
    pub fn insert(&mut self, node: P, view: Vec<P>) {
        self.views.insert(node, view);
    }

    /// Whether `a` lists `b`.
    fn lists(&self, a: &P, b: &P) -> bool {
        self.views.get(a).is_some_and(|v| v.contains(b))
    }

    /// Runs every check.
    pub fn report(&self) -> Report<P> {
        // Undirected adjacency over reporting nodes; links to non-reporting nodes are ignored
        // for connectivity but still count as asymmetric.
        let mut adj: BTreeMap<&P, BTreeSet<&P>> =
            self.views.keys().map(|k| (k, BTreeSet::new())).collect();
        let mut asymmetric = Vec::new();
        let mut degree_histogram = BTreeMap::new();
        for (a, view) in &self.views {
            *degree_histogram.entry(view.len()).or_insert(0) += 1;
            for b in view {
                if b == a {
                    continue;
                }
                if !self.lists(b, a) {
                    asymmetric.push((a.clone(), b.clone()));
                }
                if self.views.contains_key(b) {
                    adj.entry(a).or_default().insert(b);
                    adj.entry(b).or_default().insert(a);
                }
            }
        }
        let links = adj.values().map(|s| s.len()).sum::<usize>() / 2;
        let isolated: Vec<P> = adj
            .iter()
            .filter(|(_, s)| s.is_empty())
            .map(|(k, _)| (*k).clone())
            .collect();
        let mut seen: BTreeSet<&P> = BTreeSet::new();
        let mut components = Vec::new();
        for start in adj.keys() {
            if !seen.insert(start) {
                continue;
            }
            let mut size = 0;
            let mut queue = VecDeque::from([*start]);
            while let Some(n) = queue.pop_front() {
                size += 1;
                for m in &adj[n] {
                    if seen.insert(m) {
                        queue.push_back(m);
                    }
                }
            }
            components.push(size);
        }
        components.sort_unstable_by(|a, b| b.cmp(a));
        Report {
            nodes: self.views.len(),
            links,
            connected: components.len() <= 1,
            components,
            isolated,
            asymmetric,
            degree_histogram,
        }
    }

    /// Hop distance from `from` to every reachable reporting node, over undirected links.
    pub fn distances(&self, from: &P) -> BTreeMap<P, usize> {
        let mut dist = BTreeMap::new();
        if !self.views.contains_key(from) {
            return dist;
        }
        let mut adj: BTreeMap<&P, Vec<&P>> = BTreeMap::new();
        for (a, view) in &self.views {
            for b in view {
                if self.views.contains_key(b) && a != b {
                    adj.entry(a).or_default().push(b);
                    adj.entry(b).or_default().push(a);
                }
            }
        }
        dist.insert(from.clone(), 0);
        let mut queue = VecDeque::from([from]);
        while let Some(n) = queue.pop_front() {
            let d = dist[n];
            for m in adj.get(n).into_iter().flatten() {
                if !dist.contains_key(*m) {
                    dist.insert((*m).clone(), d + 1);
                    queue.push_back(m);
                }
            }
        }
        dist
    }
}

impl<P: Ord + Clone + Serialize> Overlay<P> {
    /// The views and the report as one JSON document: `{"views": {...}, "report": {...}}`.
    /// Peers that serialise to non-strings are keyed by their JSON text.
    pub fn to_json(&self) -> serde_json::Value {
        let views: serde_json::Map<String, serde_json::Value> = self
            .views
            .iter()
            .map(|(k, v)| {
                (
                    key_string(k),
                    serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
                )
            })
            .collect();
        serde_json::json!({
            "views": views,
            "report": serde_json::to_value(self.report()).unwrap_or(serde_json::Value::Null),
        })
    }
}

fn key_string<P: Serialize>(p: &P) -> String {
    match serde_json::to_value(p) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(v) => v.to_string(),
        Err(_) => String::from("?"),
    }
}

impl<P: Ord + Clone + Display> Overlay<P> {
    /// Graphviz DOT: a digraph with one edge per listed neighbour; symmetric pairs are drawn
    /// as one undirected-looking edge (`dir=none`), asymmetric links in red, isolated nodes
    /// filled red.
    pub fn to_dot(&self) -> String {
        use std::fmt::Write;
        let report = self.report();
        let isolated: BTreeSet<&P> = report.isolated.iter().collect();
        let mut s = String::from("digraph overlay {\n  node [shape=circle];\n");
        for n in self.views.keys() {
            if isolated.contains(n) {
                let _ = writeln!(s, "  \"{n}\" [style=filled, fillcolor=red];");
            } else {
                let _ = writeln!(s, "  \"{n}\";");
            }
        }
        for (a, view) in &self.views {
            for b in view {
                if self.lists(b, a) {
                    if a < b {
                        let _ = writeln!(s, "  \"{a}\" -> \"{b}\" [dir=none];");
                    }
                } else {
                    let _ = writeln!(s, "  \"{a}\" -> \"{b}\" [color=red];");
                }
            }
        }
        s.push_str("}\n");
        s
    }
}

/// [`Overlay::report`] for nodes numbered `0..n` with `u32` ids, in a few bytes per node: the
/// views are packed into one array (compressed sparse rows) and the components found by
/// union-find (Tarjan, "Efficiency of a good but not linear set union algorithm", J. ACM
/// 22(2), 1975) instead of maps of sets, so that checking a simulated overlay of millions of
/// nodes does not double the simulation's memory. `view(i)` is node `i`'s view, `None` for a
/// node that reports none (crashed); ids at or above `n` count as nodes that report none. The
/// same report as [`Overlay::report`] over the same views (tested).
pub fn report_dense(n: u32, view: impl Fn(u32) -> Option<Vec<u32>>) -> Report<u64> {
    let len = n as usize;
    let mut present = vec![false; len];
    let mut offsets: Vec<u32> = Vec::with_capacity(len + 1);
    let mut targets: Vec<u32> = Vec::new();
    offsets.push(0);
    for i in 0..n {
        if let Some(v) = view(i) {
            present[i as usize] = true;
            targets.extend(v);
        }
        offsets.push(u32::try_from(targets.len()).unwrap_or(u32::MAX));
    }
    let out = |a: u32| &targets[offsets[a as usize] as usize..offsets[a as usize + 1] as usize];
    let reports = |b: u32| (b as usize) < len && present[b as usize];
    let lists = |a: u32, b: u32| reports(a) && out(a).contains(&b);
    let mut parent: Vec<u32> = (0..n).collect();
    let mut size: Vec<u32> = vec![1; len];
    let mut linked = vec![false; len];
    fn root(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            let up = parent[parent[x as usize] as usize];
            parent[x as usize] = up;
            x = up;
        }
        x
    }
    let mut asymmetric = Vec::new();
    let mut degree_histogram = BTreeMap::new();
    let mut links = 0;
    for a in (0..n).filter(|&a| reports(a)) {
        *degree_histogram.entry(out(a).len()).or_insert(0) += 1;
        for &b in out(a) {
            if b == a {
                continue;
            }
            let back = lists(b, a);
            if !back {
                asymmetric.push((u64::from(a), u64::from(b)));
            }
            if reports(b) {
                // Count each undirected link once: from its lower end, or from the upper end
                // when the lower end does not list it.
                if a < b || !back {
                    links += 1;
                }
                linked[a as usize] = true;
                linked[b as usize] = true;
                let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                if ra != rb {
                    let (big, small) = if size[ra as usize] >= size[rb as usize] {
                        (ra, rb)
                    } else {
                        (rb, ra)
                    };
                    parent[small as usize] = big;
                    size[big as usize] += size[small as usize];
                }
            }
        }
    }
    let isolated: Vec<u64> = (0..n)
        .filter(|&a| reports(a) && !linked[a as usize])
        .map(u64::from)
        .collect();
    let mut components: Vec<usize> = (0..n)
        .filter(|&a| reports(a) && root(&mut parent, a) == a)
        .map(|a| size[a as usize] as usize)
        .collect();
    components.sort_unstable_by(|a, b| b.cmp(a));
    Report {
        nodes: present.iter().filter(|p| **p).count(),
        links,
        connected: components.len() <= 1,
        components,
        isolated,
        asymmetric,
        degree_histogram,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The dense report is the map-based one: random views over up to 40 nodes, some not
        /// reporting, some listing themselves, nodes out of range or nodes that report none.
        #[test]
        fn the_dense_report_is_the_same(views in proptest::collection::vec(
            proptest::option::weighted(0.9, proptest::collection::btree_set(0u32..45, 0..6)),
            1..40,
        )) {
            let mut o = Overlay::new();
            for (i, v) in views.iter().enumerate() {
                if let Some(v) = v {
                    o.insert(i as u64, v.iter().map(|&x| u64::from(x)).collect());
                }
            }
            let dense = report_dense(views.len() as u32, |i| {
                views[i as usize].as_ref().map(|v| v.iter().copied().collect())
            });
            prop_assert_eq!(dense, o.report());
        }
    }

    #[test]
    fn finds_components_isolated_and_asymmetry() {
        let mut o = Overlay::new();
        o.insert(1u64, vec![2]);
        o.insert(2, vec![1]);
        o.insert(3, vec![4]);
        o.insert(4, vec![]);
        o.insert(5, vec![]);
        let r = o.report();
        assert!(!r.connected);
        assert_eq!(r.components, vec![2, 2, 1]);
        assert_eq!(r.isolated, vec![5]);
        assert_eq!(r.asymmetric, vec![(3, 4)]);
        assert_eq!(r.links, 2);
        assert_eq!(r.degree_histogram, BTreeMap::from([(0, 2), (1, 3)]));
        assert_eq!(o.distances(&1), BTreeMap::from([(1, 0), (2, 1)]));
        let json = o.to_json();
        assert_eq!(json["report"]["connected"], serde_json::Value::Bool(false));
        assert_eq!(json["views"]["3"], serde_json::json!([4]));
        let dot = o.to_dot();
        assert!(dot.contains("\"3\" -> \"4\" [color=red]"));
        assert!(dot.contains("\"1\" -> \"2\" [dir=none]"));
        assert!(dot.contains("\"5\" [style=filled, fillcolor=red]"));
    }
}
