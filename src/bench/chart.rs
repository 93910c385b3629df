//! The benchmark chart (plotters), drawn once as PNG and once as SVG from the same code: the
//! achieved write rate per second against each target (top), achieved vs target WCU/s (bottom
//! left), and the projected time to load the user's row count at each setting (bottom right).
//! PNG text uses a Latin-1 cut of DejaVu Sans compiled into the binary (assets/), so the chart
//! renders the same on a host without fonts.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::BenchReport;

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");
const SIZE: (u32, u32) = (1200, 900);

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An axis label: thousands separated, one decimal only when there is a fraction.
fn tick(v: &f64) -> String {
    if v.fract().abs() < 1e-9 { thousands(v.round().max(0.0) as u64) } else { format!("{v:.1}") }
}

fn register_font() -> Result<(), String> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).map_err(|_| "the bundled font does not load".to_string());
    });
    result
}

/// Draws the chart into `png` and `svg`.
pub fn draw(r: &BenchReport, png: &Path, svg: &Path) -> Result<(), String> {
    register_font()?;
    {
        let root = BitMapBackend::new(png, SIZE).into_drawing_area();
        draw_on(&root, r)?;
        root.present().map_err(|e| format!("{}: {e}", png.display()))?;
    }
    let root = SVGBackend::new(svg, SIZE).into_drawing_area();
    draw_on(&root, r)?;
    root.present().map_err(|e| format!("{}: {e}", svg.display()))
}

fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    COLORS[i % COLORS.len()]
}

fn draw_on<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &BenchReport) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let via = if r.through_proxy { "local DynamoDB behind the capacity proxy" } else { "DynamoDB" };
    let title = format!("mysql2ddb bench: table {} ({via})", r.table);
    let root = root.titled(&title, (FONT, 24)).map_err(e)?;
    let (top, bottom) = root.split_vertically(SIZE.1 / 2 - 20);
    let (left, right) = bottom.split_horizontally(SIZE.0 / 2);
    timeline(&top, r).map_err(e)?;
    achieved_vs_target(&left, r).map_err(e)?;
    projection(&right, r).map_err(e)
}

type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn timeline<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, r: &BenchReport) -> Drawn<DB> {
    let max_t = r.settings.iter().flat_map(|s| s.timeline.last()).map(|t| t.second).fold(1.0, f64::max);
    // Headroom above the highest line for the legend.
    let max_y = r.settings.iter().flat_map(|s| s.timeline.iter().map(|t| t.wcu_per_s).chain([s.target_wcu])).fold(1.0, f64::max) * 1.5;
    let mut chart = ChartBuilder::on(area)
        .caption("Achieved write rate per second (dashed: target)", (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_t, 0.0..max_y)?;
    chart
        .configure_mesh()
        .x_desc("Time since the first write (s)")
        .y_desc("Consumed WCU per second")
        .label_style((FONT, 13))
        .x_label_formatter(&tick)
        .y_label_formatter(&|v| thousands(v.round() as u64))
        .axis_desc_style((FONT, 14))
        .draw()?;
    for (i, s) in r.settings.iter().enumerate() {
        let c = color(i);
        let points: Vec<(f64, f64)> = s.timeline.iter().map(|t| (t.second, t.wcu_per_s)).collect();
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))?
            .label(format!("target {} WCU/s: {:.1} % achieved", thousands(s.target_wcu as u64), s.achieved_ratio * 100.0))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(DashedLineSeries::new(vec![(0.0, s.target_wcu), (max_t, s.target_wcu)], 6, 4, c.stroke_width(1)))?;
    }
    chart.configure_series_labels().position(SeriesLabelPosition::UpperRight).label_font((FONT, 13)).background_style(WHITE.mix(0.85)).border_style(BLACK).draw()
}

fn achieved_vs_target<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, r: &BenchReport) -> Drawn<DB> {
    let max = r.settings.iter().map(|s| s.target_wcu.max(s.achieved_wcu_per_s)).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("Achieved vs target", (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max, 0.0..max)?;
    chart
        .configure_mesh()
        .x_desc("Target WCU/s")
        .y_desc("Achieved WCU/s (average)")
        .label_style((FONT, 13))
        .x_label_formatter(&tick)
        .y_label_formatter(&|v| thousands(v.round() as u64))
        .axis_desc_style((FONT, 14))
        .draw()?;
    chart
        .draw_series(DashedLineSeries::new(vec![(0.0, 0.0), (max, max)], 6, 4, BLACK.mix(0.5).stroke_width(1)))?
        .label("achieved = target")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
    let points: Vec<(f64, f64)> = r.settings.iter().map(|s| (s.target_wcu, s.achieved_wcu_per_s)).collect();
    let blue = color(0);
    chart
        .draw_series(LineSeries::new(points.clone(), blue.stroke_width(2)).point_size(4))?
        .label("measured")
        .legend(move |(x, y)| Circle::new((x + 10, y), 4, blue.filled()));
    chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).label_font((FONT, 13)).background_style(WHITE.mix(0.85)).border_style(BLACK).draw()
}

fn projection<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, r: &BenchReport) -> Drawn<DB> {
    let finite: Vec<(f64, f64)> = r.settings.iter().filter(|s| s.projected_hours.is_finite()).map(|s| (s.target_wcu, s.projected_hours)).collect();
    let max_x = finite.iter().map(|p| p.0).fold(1.0, f64::max) * 1.1;
    let max_y = finite.iter().map(|p| p.1).fold(0.1, f64::max) * 1.2;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("Time to load {} source rows", thousands(r.projected_rows)), (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_x, 0.0..max_y)?;
    chart
        .configure_mesh()
        .x_desc("Target WCU/s")
        .y_desc("Projected hours")
        .label_style((FONT, 13))
        .x_label_formatter(&tick)
        .y_label_formatter(&|v| thousands(v.round() as u64))
        .axis_desc_style((FONT, 14))
        .draw()?;
    let orange = color(1);
    chart
        .draw_series(LineSeries::new(finite.clone(), orange.stroke_width(2)).point_size(4))?
        .label(format!("at the achieved rate, {:.3} WCU per row", r.wcu_per_source_row))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], orange.stroke_width(2)));
    chart.draw_series(finite.iter().map(|&(x, y)| Text::new(format!("{y:.1} h"), (x, y + max_y * 0.03), (FONT, 13).into_font())))?;
    chart.configure_series_labels().position(SeriesLabelPosition::UpperRight).label_font((FONT, 13)).background_style(WHITE.mix(0.85)).border_style(BLACK).draw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_000_000_000), "1,000,000,000");
    }
}
