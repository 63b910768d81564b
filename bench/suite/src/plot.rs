//! The report's plots, as SVG (plotters' SVG backend: no font or image
//! libraries): Hull's cost ratios per measurement, the density line and
//! the start-latency distribution.

use crate::results::{Results, Row};
use crate::stats::cost_ratio;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Drawing a plot failed.
#[derive(Debug, thiserror::Error)]
#[error("plotting {file}: {message}")]
pub struct PlotError {
    file: String,
    message: String,
}

/// Turns a plotters error into a [`PlotError`] for `file`.
fn err<E: std::fmt::Display>(file: &Path) -> impl Fn(E) -> PlotError + '_ {
    move |e| PlotError {
        file: file.display().to_string(),
        message: e.to_string(),
    }
}

const HULL: RGBColor = RGBColor(0xd6, 0x4f, 0x1f);
const RUNC: RGBColor = RGBColor(0x1f, 0x6f, 0xb4);
const HOST: RGBColor = RGBColor(0x3a, 0x9a, 0x3a);
const FLOOR: RGBColor = RGBColor(0x80, 0x80, 0x80);

/// Writes every plot into `dir`; returns the files.
pub fn write_all(results: &Results, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let ratios = dir.join("ratios.svg");
    ratio_bars(results, &ratios)?;
    let density = dir.join("density.svg");
    density_line(results, &density)?;
    let start = dir.join("start.svg");
    start_points(results, &start)?;
    Ok(vec![ratios, density, start])
}

/// (label, Hull ×runc, Hull ×host) for each row that has Hull and a peer.
fn ratios(results: &Results) -> Vec<(String, Option<f64>, Option<f64>)> {
    let ratio = |row: &Row, peer: &str| {
        let (h, p) = (row.summary("hull")?, row.summary(peer)?);
        cost_ratio(h.median, p.median, row.lower_is_better).filter(|r| *r > 0.0)
    };
    results
        .rows
        .iter()
        .map(|row| (row.key.clone(), ratio(row, "runc"), ratio(row, "host")))
        .filter(|(_, r, h)| r.is_some() || h.is_some())
        .collect()
}

/// One horizontal bar per row in two panels (×runc, ×host), on a log
/// scale with parity (×1) as the bars' base.
fn ratio_bars(results: &Results, file: &Path) -> Result<(), PlotError> {
    // The first row at the top: the y axis counts up from the bottom.
    let mut rows = ratios(results);
    rows.reverse();
    let n = rows.len().max(1);
    let height = 120 + 22 * n as u32;
    let root = SVGBackend::new(file, (1100, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err(file))?;
    let (left, right) = root.split_horizontally(620);
    let panels = [
        (left, "Hull's cost ÷ runc's", RUNC, 0usize),
        (right, "÷ the host's", HOST, 1),
    ];
    for (area, title, color, which) in panels {
        let values: Vec<Option<f64>> = rows
            .iter()
            .map(|(_, r, h)| if which == 0 { *r } else { *h })
            .collect();
        // Room right of the longest bar for its label.
        let hi = values.iter().flatten().fold(2.0f64, |a, b| a.max(*b)) * 4.0;
        let lo = values.iter().flatten().fold(0.5f64, |a, b| a.min(*b)) / 1.5;
        let labels: Vec<String> = rows.iter().map(|(k, _, _)| k.clone()).collect();
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(if which == 0 { 200 } else { 10 })
            .build_cartesian_2d((lo..hi).log_scale(), (0..n).into_segmented())
            .map_err(err(file))?;
        chart
            .configure_mesh()
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) if which == 0 => {
                    labels.get(*i).cloned().unwrap_or_default()
                }
                _ => String::new(),
            })
            .x_label_formatter(&|x| format!("×{x}"))
            .light_line_style(WHITE)
            .draw()
            .map_err(err(file))?;
        let bars = values.iter().enumerate().filter_map(|(i, v)| {
            let v = (*v)?;
            let mut bar = Rectangle::new(
                [
                    (1.0, SegmentValue::Exact(i)),
                    (v, SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            );
            bar.set_margin(3, 3, 0, 0);
            Some(bar)
        });
        chart.draw_series(bars).map_err(err(file))?;
        let text = values.iter().enumerate().filter_map(|(i, v)| {
            let v = (*v)?;
            Some(Text::new(
                format!("×{}", crate::stats::format_value(v)),
                (v.max(1.0), SegmentValue::CenterOf(i)),
                ("sans-serif", 12),
            ))
        });
        chart.draw_series(text).map_err(err(file))?;
    }
    root.present().map_err(err(file))
}

/// (N, MiB) points of the `density.nN` rows for `env`.
fn density_points(results: &Results, env: &str) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = results
        .rows
        .iter()
        .filter_map(|row| {
            let n: f64 = row.key.strip_prefix("density.n")?.parse().ok()?;
            Some((n, row.summary(env)?.median))
        })
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// Host memory against the number of idle containers, Hull and runc.
fn density_line(results: &Results, file: &Path) -> Result<(), PlotError> {
    let root = SVGBackend::new(file, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err(file))?;
    let series = [
        ("Hull", HULL, density_points(results, "hull")),
        ("runc", RUNC, density_points(results, "runc")),
    ];
    let max_n = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let max_mib = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("Host memory (PSS) of N idle containers", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_n * 1.05, 0.0..max_mib * 1.1)
        .map_err(err(file))?;
    chart
        .configure_mesh()
        .x_desc("idle containers")
        .y_desc("MiB")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(err(file))?;
    for (name, color, points) in series {
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(err(file))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .map_err(err(file))?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err(file))?;
    root.present().map_err(err(file))
}

/// The start rows' every run: (label, color, samples).
fn start_series(results: &Results) -> Vec<(String, RGBColor, Vec<f64>)> {
    let mut out = Vec::new();
    for row in results
        .rows
        .iter()
        .filter(|r| r.group == "start" && r.unit == "ms")
    {
        if row.key.contains("phase_") {
            continue;
        }
        let name = row.key.split_once('.').map_or(row.key.as_str(), |(_, k)| k);
        for (env, color) in [
            ("hull", HULL),
            ("floor", FLOOR),
            ("runc", RUNC),
            ("host", HOST),
        ] {
            if let Some(s) = row.samples.get(env).filter(|s| !s.is_empty()) {
                out.push((format!("{name} {env}"), color, s.clone()));
            }
        }
    }
    out
}

/// Every start run as a point, per row and environment, on a log scale,
/// with each median as a bar.
fn start_points(results: &Results, file: &Path) -> Result<(), PlotError> {
    let mut series = start_series(results);
    series.reverse();
    let n = series.len().max(1);
    let root = SVGBackend::new(file, (900, 140 + 24 * n as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err(file))?;
    let all = series.iter().flat_map(|s| s.2.iter().copied());
    let (lo, hi) = all.fold((f64::MAX, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let lo = if lo == f64::MAX {
        0.1
    } else {
        (lo / 2.0).max(0.01)
    };
    let labels: Vec<String> = series.iter().map(|s| s.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Start latency, every run (ms, log scale; bar: median)",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(200)
        .build_cartesian_2d((lo..hi * 2.0).log_scale(), (0..n).into_segmented())
        .map_err(err(file))?;
    chart
        .configure_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("ms")
        .draw()
        .map_err(err(file))?;
    for (i, (_, color, samples)) in series.iter().enumerate() {
        chart
            .draw_series(
                samples.iter().map(|v| {
                    Circle::new((*v, SegmentValue::CenterOf(i)), 4, color.stroke_width(1))
                }),
            )
            .map_err(err(file))?;
        if let Some(s) = crate::stats::Summary::of(samples) {
            let mut bar = Rectangle::new(
                [
                    (s.median / 1.02, SegmentValue::Exact(i)),
                    (s.median * 1.02, SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            chart.draw_series(std::iter::once(bar)).map_err(err(file))?;
        }
    }
    root.present().map_err(err(file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::fixture;

    /// The file parses as XML with an `svg` root that drew something.
    fn assert_svg(path: &Path) {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let doc =
            roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(
            doc.descendants().filter(|n| n.is_element()).count() > 10,
            "{text}"
        );
    }

    #[test]
    fn writes_three_well_formed_svgs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = write_all(&fixture(), dir.path()).expect("plots");
        assert_eq!(files.len(), 3);
        for f in &files {
            assert_svg(f);
        }
        let ratios = std::fs::read_to_string(dir.path().join("ratios.svg")).expect("read");
        assert!(ratios.contains("start.run_true"), "the rows are labelled");
        let density = std::fs::read_to_string(dir.path().join("density.svg")).expect("read");
        assert!(density.contains("Hull") && density.contains("runc"));
    }

    #[test]
    fn ratio_and_density_data() {
        let r = fixture();
        let rows = ratios(&r);
        let (key, runc, host) = &rows[0];
        assert_eq!(key, "start.run_true");
        assert_eq!(*runc, Some(1575.0 / 27.0));
        assert_eq!(*host, Some(1575.0));
        assert_eq!(density_points(&r, "hull"), vec![(1.0, 95.0), (5.0, 470.0)]);
        assert_eq!(start_series(&r).len(), 4);
    }

    #[test]
    fn empty_results_still_plot() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_all(&Results::default(), dir.path()).expect("plots");
        for name in ["ratios.svg", "density.svg", "start.svg"] {
            assert!(dir.path().join(name).exists());
        }
    }
}
