//! Charts drawn on the server as inline SVG: no script, nothing to
//! download, and a page that works with the content security policy of a
//! page without inline script. Each function returns the `<svg>` element;
//! templates insert it with `|safe`, so every text it holds is escaped here.

use std::fmt::Write as _;

/// Escape text for an SVG text node or attribute.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The scale of `values` onto `[0, 1]`; a flat series sits in the middle.
fn scale(values: &[f64]) -> impl Fn(f64) -> f64 {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = hi - lo;
    move |v| if span > 0.0 { (v - lo) / span } else { 0.5 }
}

/// A sparkline of `values` (oldest first), `w`×`h` pixels; empty for fewer
/// than two points. `title` is the tooltip.
pub fn sparkline(values: &[f64], w: u32, h: u32, title: &str) -> String {
    if values.len() < 2 {
        return String::new();
    }
    let y = scale(values);
    let step = f64::from(w - 2) / (values.len() - 1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                1.0 + i as f64 * step,
                1.0 + (1.0 - y(*v)) * f64::from(h - 2)
            )
        })
        .collect();
    let rising = values.last() >= values.first();
    format!(
        r#"<svg class="spark {}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>{}</title><polyline fill="none" stroke-width="1.5" points="{}"/></svg>"#,
        if rising { "up" } else { "down" },
        esc(title),
        points.join(" ")
    )
}

/// One named series of a line chart.
pub struct Series {
    pub name: String,
    /// (x, y) points, x in seconds since the epoch (or any increasing unit).
    pub points: Vec<(f64, f64)>,
}

/// Colours of series, in order; more series reuse them.
const PALETTE: [&str; 8] = [
    "#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4b5563",
];

/// A line chart with a legend: one line per series on shared axes;
/// `y_label` formats a y value for the axis (e.g. as a percentage). x is
/// seconds since the epoch; the axis shows the first and last time (UTC).
pub fn lines(series: &[Series], w: u32, h: u32, y_label: impl Fn(f64) -> String) -> String {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    if all.len() < 2 {
        return String::new();
    }
    let xs: Vec<f64> = all.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = all.iter().map(|p| p.1).collect();
    let (fx, fy) = (scale(&xs), scale(&ys));
    let (left, right, top, bottom) = (56.0, 8.0, 8.0, 20.0);
    let pw = f64::from(w) - left - right;
    let ph = f64::from(h) - top - bottom;
    let mut svg = format!(
        r#"<svg class="chart" width="{w}" height="{}" viewBox="0 0 {w} {}" role="img">"#,
        h + 18 * series.len().div_ceil(4) as u32,
        h + 18 * series.len().div_ceil(4) as u32
    );
    let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    for (frac, v) in [(0.0, lo), (0.5, (lo + hi) / 2.0), (1.0, hi)] {
        let yy = top + (1.0 - frac) * ph;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            left + pw,
            left - 4.0,
            yy + 4.0,
            esc(&y_label(v))
        );
    }
    let lo_x = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi_x = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    for (x, anchor, at) in [(lo_x, "start", left), (hi_x, "end", left + pw)] {
        let label = chrono::DateTime::from_timestamp(x as i64, 0)
            .map(|t| t.format("%m-%d %H:%M").to_string())
            .unwrap_or_default();
        let _ = write!(
            svg,
            r#"<text class="axis" x="{at:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"#,
            top + ph + 14.0,
            esc(&label)
        );
    }
    for (i, s) in series.iter().enumerate() {
        if s.points.is_empty() {
            continue;
        }
        let colour = PALETTE[i % PALETTE.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", left + fx(*x) * pw, top + (1.0 - fy(*y)) * ph))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"><title>{}</title></polyline>"#,
            pts.join(" "),
            esc(&s.name)
        );
        let (row, col) = (i / 4, i % 4);
        let lx = left + col as f64 * (pw / 4.0);
        let ly = f64::from(h) + 14.0 + row as f64 * 18.0;
        let _ = write!(
            svg,
            r#"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{colour}"/><text class="legend" x="{:.1}" y="{ly:.1}">{}</text>"#,
            ly - 9.0,
            lx + 14.0,
            esc(&s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// `s` cut to `max` characters with an ellipsis; the full text stays in
/// the bar's tooltip.
fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let cut: String = s.chars().take(max - 1).collect();
    format!("{cut}…")
}

/// A horizontal bar chart: one bar per (label, value), values ≥ 0 or
/// signed (bars grow left of a zero line for negatives).
pub fn bars(items: &[(String, f64)], w: u32, value_label: impl Fn(f64) -> String) -> String {
    if items.is_empty() {
        return String::new();
    }
    let row = 20.0;
    let h = (items.len() as f64 * row + 4.0) as u32;
    let label_w = 170.0;
    let value_w = 70.0;
    let pw = f64::from(w) - label_w - value_w;
    let lo = items.iter().map(|i| i.1).fold(0.0, f64::min);
    let hi = items.iter().map(|i| i.1).fold(0.0, f64::max);
    let span = if hi - lo > 0.0 { hi - lo } else { 1.0 };
    let zero = label_w + (-lo / span) * pw;
    let mut svg = format!(
        r#"<svg class="chart bars" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">"#
    );
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 2.0 + i as f64 * row;
        let x_end = label_w + ((v - lo) / span) * pw;
        let (x, width) = if x_end >= zero {
            (zero, x_end - zero)
        } else {
            (x_end, zero - x_end)
        };
        let _ = write!(
            svg,
            r#"<text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect class="{}" x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>{}: {}</title></rect><text class="axis" x="{:.1}" y="{:.1}">{}</text>"#,
            label_w - 6.0,
            y + 13.0,
            esc(&short(label, 26)),
            if *v < 0.0 { "neg" } else { "pos" },
            y + 3.0,
            width.max(1.0),
            row - 6.0,
            esc(label),
            esc(&value_label(*v)),
            label_w + pw + 6.0,
            y + 13.0,
            esc(&value_label(*v))
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_spans_its_box_and_escapes_its_title() {
        let svg = sparkline(&[0.5, 0.52, 0.48], 80, 20, "home <b>");
        assert!(svg.starts_with("<svg class=\"spark down\""), "{svg}");
        assert!(
            svg.contains("points=\"1.0,10.0 40.0,1.0 79.0,19.0\""),
            "{svg}"
        );
        assert!(svg.contains("<title>home &lt;b&gt;</title>"));
        assert_eq!(sparkline(&[0.5], 80, 20, "x"), "");
    }

    #[test]
    fn bars_grow_from_zero_both_ways() {
        let svg = bars(&[("a".into(), 1.0), ("b".into(), -1.0)], 420, |v| {
            format!("{v:+.1}")
        });
        assert!(svg.contains("class=\"pos\""));
        assert!(svg.contains("class=\"neg\""));
        assert!(svg.contains(">+1.0<") && svg.contains(">-1.0<"));
        assert_eq!(bars(&[], 100, |v| v.to_string()), "");
    }

    #[test]
    fn lines_need_two_points_and_name_each_series() {
        let s = [Series {
            name: "fanduel".into(),
            points: vec![(0.0, 1.9), (60.0, 1.95)],
        }];
        let svg = lines(&s, 400, 160, |v| format!("{v:.2}"));
        assert!(svg.contains("<title>fanduel</title>"));
        assert!(svg.contains(">1.90<") && svg.contains(">1.95<"));
        assert_eq!(lines(&[], 400, 160, |v| v.to_string()), "");
    }
}
