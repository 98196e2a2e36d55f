//! The run's files: raw data as CSV, the summary as JSON, and the plots as PNG and SVG
//! (plotters). The plots are the three graphs Lasp asked of every change (talk, "what went
//! wrong"): **divergence** over time, **state transmission** over time by message kind, and
//! **overhead** (protocol bytes against payload bytes); plus **overcounting per ad**.
//!
//! Text needs a TrueType font: `RASP_FONT` names one, else the usual system locations are
//! tried (DejaVu Sans, Liberation Sans, any `.ttf` under `/usr/share/fonts`). Without one the
//! plots are skipped with a message and the CSV files are still written.

use super::summary::{RunResult, Sample};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The files written.
#[derive(Clone, Debug, Default)]
pub struct Written {
    /// CSV and JSON files.
    pub data: Vec<PathBuf>,
    /// PNG and SVG files.
    pub plots: Vec<PathBuf>,
    /// Why plots were skipped, if they were.
    pub plots_skipped: Option<String>,
}

/// Writes `samples.csv`, `overcount.csv`, `summary.json` and the plots into `dir`.
pub fn write_all(result: &RunResult, dir: &Path) -> crate::Result<Written> {
    std::fs::create_dir_all(dir)
        .map_err(|e| crate::Error::io(format!("creating {}", dir.display()), e))?;
    let mut w = Written::default();
    let put = |name: &str, text: String, w: &mut Written| -> crate::Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, text)
            .map_err(|e| crate::Error::io(format!("writing {}", p.display()), e))?;
        w.data.push(p);
        Ok(())
    };
    put("samples.csv", samples_csv(&result.series.samples), &mut w)?;
    put("overcount.csv", overcount_csv(result), &mut w)?;
    let json = serde_json::json!({ "summary": &result.summary, "host": &result.host });
    put(
        "summary.json",
        serde_json::to_string_pretty(&json).expect("json") + "\n",
        &mut w,
    )?;
    match font() {
        Err(e) => w.plots_skipped = Some(e),
        Ok(()) => {
            for name in PLOTS {
                for ext in ["png", "svg"] {
                    let p = dir.join(format!("{name}.{ext}"));
                    let r = if ext == "png" {
                        let root = BitMapBackend::new(&p, (1000, 600)).into_drawing_area();
                        draw_one(name, result, &root)
                            .and_then(|()| root.present().map_err(|e| e.to_string()))
                    } else {
                        let root = SVGBackend::new(&p, (1000, 600)).into_drawing_area();
                        draw_one(name, result, &root)
                            .and_then(|()| root.present().map_err(|e| e.to_string()))
                    };
                    r.map_err(|e| format!("plotting {}: {e}", p.display()))?;
                    w.plots.push(p);
                }
            }
        }
    }
    Ok(w)
}

fn kinds(samples: &[Sample]) -> Vec<String> {
    let set: BTreeSet<&String> = samples.iter().flat_map(|s| s.kinds.keys()).collect();
    set.into_iter().cloned().collect()
}

/// The samples as CSV: one row per sample, cumulative bytes sent per message kind.
pub fn samples_csv(samples: &[Sample]) -> String {
    let kinds = kinds(samples);
    let mut s = String::from(
        "t_s,impressions,divergence,stale_clients,ads_left,offline_clients,payload_bytes",
    );
    for k in &kinds {
        let _ = write!(s, ",bytes_{}", k.replace('/', "_"));
    }
    s.push('\n');
    for x in samples {
        let _ = write!(
            s,
            "{:.3},{},{:.6},{},{},{},{}",
            x.t, x.impressions, x.divergence, x.stale, x.ads_left, x.offline, x.payload
        );
        for k in &kinds {
            let _ = write!(s, ",{}", x.kinds.get(k).copied().unwrap_or(0));
        }
        s.push('\n');
    }
    s
}

/// Per ad: final impressions, impressions past the threshold, and that as %.
pub fn overcount_csv(result: &RunResult) -> String {
    let t = result.summary.threshold as f64;
    let mut s = String::from("ad,impressions,over,over_pct\n");
    for a in &result.summary.per_ad {
        let _ = writeln!(
            s,
            "{},{},{},{:.3}",
            a.ad,
            a.impressions,
            a.over,
            a.over as f64 * 100.0 / t
        );
    }
    s
}

static FONT: OnceLock<Result<(), String>> = OnceLock::new();

fn font() -> Result<(), String> {
    FONT.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Ok(p) = std::env::var("RASP_FONT") {
            candidates.push(p.into());
        }
        for p in [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/System/Library/Fonts/Supplemental/Arial.ttf",
            "C:\\Windows\\Fonts\\arial.ttf",
        ] {
            candidates.push(p.into());
        }
        candidates.extend(find_ttf(Path::new("/usr/share/fonts"), 3));
        for c in candidates {
            if let Ok(bytes) = std::fs::read(&c) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err("no TrueType font found (set RASP_FONT=/path/to/font.ttf); plots skipped".into())
    })
    .clone()
}

fn find_ttf(dir: &Path, depth: u32) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() && depth > 0 {
            out.extend(find_ttf(&p, depth - 1));
        } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("ttf")) {
            out.push(p);
        }
    }
    out
}

type Area<'a, DB> = DrawingArea<DB, Shift>;

/// The plots, by file name (without extension).
const PLOTS: [&str; 4] = ["divergence", "transmission", "overhead", "overcount"];

fn draw_one<DB: DrawingBackend>(
    which: &str,
    r: &RunResult,
    area: &Area<'_, DB>,
) -> Result<(), String> {
    match which {
        "divergence" => divergence(r, area),
        "transmission" => transmission(r, area),
        "overhead" => overhead(r, area),
        _ => overcount(r, area),
    }
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn subtitle(r: &RunResult) -> String {
    let s = &r.summary;
    format!(
        "{} clients, {} servers, {} / {}, seed {}",
        s.clients, s.servers, s.membership, s.sync, s.seed
    )
}

fn t_max(r: &RunResult) -> f64 {
    r.series.samples.last().map_or(1.0, |s| s.t).max(1.0)
}

fn divergence<DB: DrawingBackend>(r: &RunResult, root: &Area<'_, DB>) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let clients = f64::from(r.summary.clients.max(1));
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("Divergence over time ({})", subtitle(r)),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max(r), 0.0..100.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("%")
        .draw()
        .map_err(err)?;
    let s = &r.series.samples;
    chart
        .draw_series(LineSeries::new(
            s.iter().map(|x| (x.t, x.divergence * 100.0)),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?
        .label("impressions not yet seen by a replica (mean, %)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            s.iter().map(|x| (x.t, x.stale as f64 * 100.0 / clients)),
            RED.stroke_width(2),
        ))
        .map_err(err)?
        .label("clients still showing a removed ad (%)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            s.iter().map(|x| (x.t, x.offline as f64 * 100.0 / clients)),
            RGBColor(120, 120, 120).stroke_width(1),
        ))
        .map_err(err)?
        .label("clients offline (%)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(120, 120, 120)));
    let ads = f64::from(r.summary.ads.max(1));
    chart
        .draw_series(LineSeries::new(
            s.iter().map(|x| (x.t, x.ads_left as f64 * 100.0 / ads)),
            GREEN.stroke_width(2),
        ))
        .map_err(err)?
        .label("ads not yet removed (%)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    Ok(())
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Rates (bytes per second) between consecutive samples of a cumulative counter.
fn rates(s: &[Sample], f: impl Fn(&Sample) -> u64) -> Vec<(f64, f64)> {
    s.windows(2)
        .map(|w| {
            let dt = (w[1].t - w[0].t).max(1e-9);
            (w[1].t, f(&w[1]).saturating_sub(f(&w[0])) as f64 / dt)
        })
        .collect()
}

fn transmission<DB: DrawingBackend>(r: &RunResult, root: &Area<'_, DB>) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let s = &r.series.samples;
    let kinds: Vec<String> = kinds(s)
        .into_iter()
        .filter(|k| {
            s.last()
                .is_some_and(|x| x.kinds.get(k).copied().unwrap_or(0) > 0)
        })
        .collect();
    let series: Vec<(String, Vec<(f64, f64)>)> = kinds
        .iter()
        .map(|k| {
            let pts = rates(s, |x| x.kinds.get(k).copied().unwrap_or(0))
                .into_iter()
                .map(|(t, v)| (t, v / 1024.0))
                .collect();
            (k.clone(), pts)
        })
        .collect();
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "State transmission over time by message kind ({})",
                subtitle(r)
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max(r), 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("KiB/s sent, all nodes")
        .draw()
        .map_err(err)?;
    for (i, (k, pts)) in series.into_iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(err)?
            .label(k)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    Ok(())
}

fn overhead<DB: DrawingBackend>(r: &RunResult, root: &Area<'_, DB>) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let s = &r.series.samples;
    let total = |x: &Sample| x.kinds.values().sum::<u64>();
    let payload: Vec<(f64, f64)> = s
        .iter()
        .map(|x| (x.t, x.payload as f64 / 1048576.0))
        .collect();
    let protocol: Vec<(f64, f64)> = s
        .iter()
        .map(|x| (x.t, total(x).saturating_sub(x.payload) as f64 / 1048576.0))
        .collect();
    let y_max = payload
        .iter()
        .chain(protocol.iter())
        .map(|p| p.1)
        .fold(1e-3, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("Overhead: protocol vs payload bytes ({})", subtitle(r)),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max(r), 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("MiB sent, cumulative, all nodes")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(payload, BLUE.stroke_width(2)))
        .map_err(err)?
        .label("payload: CRDT states and deltas")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(protocol, RED.stroke_width(2)))
        .map_err(err)?
        .label("protocol: membership, greetings, acks, framing")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    Ok(())
}

fn overcount<DB: DrawingBackend>(r: &RunResult, root: &Area<'_, DB>) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let t = r.summary.threshold as f64;
    let ads = &r.summary.per_ad;
    let pct: Vec<f64> = ads.iter().map(|a| a.over as f64 * 100.0 / t).collect();
    let y_max = pct.iter().copied().fold(1.0, f64::max) * 1.15;
    let n = ads.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "Overcounting per ad: impressions past the threshold, % (mean {:.2} %)",
                r.summary.overcount_mean_pct
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((0..n).into_segmented(), 0.0..y_max)
        .map_err(err)?;
    let names: Vec<String> = ads.iter().map(|a| a.ad.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_style(("sans-serif", 11).into_font())
        .y_desc("% of the threshold")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(pct.iter().enumerate().map(|(i, v)| {
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                PALETTE[0].filled(),
            );
            bar.set_margin(0, 0, 3, 3);
            bar
        }))
        .map_err(err)?;
    Ok(())
}
