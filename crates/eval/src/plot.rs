//! Small SVG line charts for reports (plotters, SVG backend: no fonts or bitmaps needed; the
//! browser draws the text).

use plotters::prelude::*;

/// One line on a chart.
pub struct Series<'a> {
    /// Legend label.
    pub name: &'a str,
    /// (x, y) points, x ascending.
    pub points: Vec<(f64, f64)>,
    /// Draw it thick with markers (evaluations) rather than thin (per-step values).
    pub emphasis: bool,
}

const COLORS: [RGBColor; 6] = [
    RGBColor(70, 110, 200),
    RGBColor(215, 60, 50),
    RGBColor(40, 150, 80),
    RGBColor(150, 80, 180),
    RGBColor(230, 140, 20),
    RGBColor(60, 60, 60),
];

/// A chart as an `<svg>` element; `hline` draws a dashed reference (chance level, say).
pub fn line_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    hline: Option<(f64, &str)>,
) -> String {
    let mut out = String::new();
    // In-memory SVG cannot fail for I/O reasons; a drawing error leaves a partial chart, which is
    // still better in a report than no report.
    let _ = draw(&mut out, title, x_desc, y_desc, series, hline);
    out
}

fn draw<'a>(
    out: &'a mut String,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    hline: Option<(f64, &str)>,
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let root = SVGBackend::with_string(out, (760, 380)).into_drawing_area();
    root.fill(&WHITE)?;
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    };
    let x_min = pts().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x_max = pts().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let mut y_min = pts().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let mut y_max = pts().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    if let Some((h, _)) = hline {
        y_min = y_min.min(h);
        y_max = y_max.max(h);
    }
    let (x_min, x_max) = if x_min.is_finite() {
        (x_min, x_max.max(x_min + 1.0))
    } else {
        (0.0, 1.0)
    };
    let (y_min, y_max) = if y_min.is_finite() {
        let pad = ((y_max - y_min) * 0.08).max(1e-3);
        (y_min - pad, y_max + pad)
    } else {
        (0.0, 1.0)
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(38)
        .y_label_area_size(58)
        .build_cartesian_2d(x_min..x_max, y_min..y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let width = if s.emphasis { 3 } else { 1 };
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                c.stroke_width(width),
            ))?
            .label(s.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(width))
            });
        if s.emphasis {
            chart.draw_series(s.points.iter().map(|p| Circle::new(*p, 4, c.filled())))?;
        }
    }
    if let Some((h, label)) = hline {
        let grey = RGBColor(140, 140, 140);
        chart
            .draw_series(DashedLineSeries::new(
                [(x_min, h), (x_max, h)],
                6,
                4,
                grey.stroke_width(1),
            ))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Attention weights as an SVG heat map: one panel per `(layer, head)` in `panels`, each a
/// `tokens × tokens` grid (query down, key across; darker = more weight), with the tokens on
/// both axes when there are few enough to read. `weights[l][h]` is row-major `[t, t]`.
pub fn attention_svg(
    tokens: &[String],
    weights: &[Vec<Vec<f32>>],
    panels: &[(usize, usize)],
) -> String {
    let t = tokens.len();
    let labels = t <= 48;
    let cell = if labels {
        14.0
    } else {
        (420.0 / t as f64).max(2.0)
    };
    let margin = if labels { 90.0 } else { 10.0 };
    let side = cell * t as f64;
    let (pw, ph) = (margin + side + 16.0, margin + side + 28.0);
    let cols = panels.len().clamp(1, 4);
    let rows = panels.len().div_ceil(cols);
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" font-family="sans-serif" font-size="10">"#,
        w = pw * cols as f64,
        h = ph * rows as f64
    );
    for (i, &(l, h)) in panels.iter().enumerate() {
        let (ox, oy) = (pw * (i % cols) as f64, ph * (i / cols) as f64);
        out += &format!(
            r#"<text x="{:.1}" y="{:.1}" font-size="12">layer {l}, head {h}</text>"#,
            ox + margin,
            oy + 14.0
        );
        let (gx, gy) = (
            ox + margin,
            oy + 22.0 + if labels { margin - 10.0 } else { 0.0 },
        );
        let w = &weights[l][h];
        for q in 0..t {
            for k in 0..=q {
                let v = w[q * t + k].clamp(0.0, 1.0);
                let shade = (255.0 * (1.0 - v)).round() as u8;
                out += &format!(
                    r#"<rect x="{:.1}" y="{:.1}" width="{cell:.1}" height="{cell:.1}" fill="rgb({shade},{shade},255)"><title>{} → {}: {v:.3}</title></rect>"#,
                    gx + cell * k as f64,
                    gy + cell * q as f64,
                    esc(&tokens[q]),
                    esc(&tokens[k])
                );
            }
        }
        out += &format!(
            r##"<rect x="{gx:.1}" y="{gy:.1}" width="{side:.1}" height="{side:.1}" fill="none" stroke="#999"/>"##
        );
        if labels {
            for (j, tok) in tokens.iter().enumerate() {
                let c = cell * j as f64 + cell * 0.75;
                out += &format!(
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                    gx - 3.0,
                    gy + c,
                    esc(tok)
                );
                out += &format!(
                    r#"<text transform="translate({:.1},{:.1}) rotate(-60)">{}</text>"#,
                    gx + c,
                    gy - 3.0,
                    esc(tok)
                );
            }
        }
    }
    out + "</svg>\n"
}

/// Points with text labels as an SVG scatter plot (`title` above): each point a dot with its
/// token beside it, the axes scaled to the points.
pub fn labelled_scatter_svg(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[(String, f64, f64)],
) -> String {
    let (w, h, pad) = (900.0, 700.0, 40.0);
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let finite = || points.iter().filter(|p| p.1.is_finite() && p.2.is_finite());
    let (x0, x1) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
        (a.0.min(p.1), a.1.max(p.1))
    });
    let (y0, y1) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
        (a.0.min(p.2), a.1.max(p.2))
    });
    let span = |a: f64, b: f64| if b > a { b - a } else { 1.0 };
    let px = |x: f64| pad + (x - x0) / span(x0, x1) * (w - 2.0 * pad - 60.0);
    let py = |y: f64| h - pad - (y - y0) / span(y0, y1) * (h - 2.0 * pad - 20.0);
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/><text x="{pad:.0}" y="22" font-size="15">{}</text><text x="{:.0}" y="{:.0}" text-anchor="middle" fill="#555">{}</text><text transform="translate(14,{:.0}) rotate(-90)" text-anchor="middle" fill="#555">{}</text>"##,
        esc(title),
        w / 2.0,
        h - 10.0,
        esc(x_desc),
        h / 2.0,
        esc(y_desc)
    );
    for (label, x, y) in finite() {
        let (cx, cy) = (px(*x), py(*y));
        out += &format!(
            r##"<circle cx="{cx:.1}" cy="{cy:.1}" r="2.5" fill="#4669c8"/><text x="{:.1}" y="{:.1}">{}</text>"##,
            cx + 4.0,
            cy + 4.0,
            esc(label)
        );
    }
    out + "</svg>\n"
}
