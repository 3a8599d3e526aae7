//! Drawing timelines with plotters (SVG backend).
//!
//! Why SVG only: plotters writes SVG `<text>` and lets the viewer render it,
//! so no font is needed at build or run time. A bitmap (PNG) would need
//! plotters to rasterize glyphs from a TTF: a system font package or a font
//! shipped in the binary, for a picture any SVG viewer or `rsvg-convert`
//! already turns into PNG.
//!
//! Layout, per output: a title row (name, totals, state legend), then three
//! panels sharing the time axis (throughput, buffer + congestion, drops per
//! second), each with its legend in a column on the right so it never
//! covers data. Every panel reserves the same label widths, so their plot
//! areas line up and one x position is one instant in all of them.

use super::parse::{Sample, State, Timeline};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Picture width, px.
pub const WIDTH: u32 = 1200;
/// Title rows of each output: name, totals, state legend, px.
const TITLE_HEIGHT: u32 = 74;
/// Throughput panel height (the one the eye goes to first), px.
const THROUGHPUT_HEIGHT: u32 = 230;
/// Buffer panel height, px.
const BUFFER_HEIGHT: u32 = 170;
/// Drops panel height, without the bottom axis description, px.
const DROPS_HEIGHT: u32 = 170;
/// Extra height under the last panel for the time axis description, px.
const TIME_AXIS_DESC_HEIGHT: u32 = 22;
/// Space between two outputs' panel sets, px.
const OUTPUT_GAP: u32 = 24;
/// Outer margin, px.
const MARGIN: u32 = 10;
/// Legend column on the right of each panel, px.
const LEGEND_WIDTH: u32 = 210;
/// Left label area (tick labels and the unit), px.
const Y_LABEL_WIDTH: u32 = 70;
/// Right label area (the congestion axis; reserved in every panel so the
/// plot areas line up), px.
const RIGHT_LABEL_WIDTH: u32 = 46;
/// Tick label area under each panel, px.
const X_LABEL_HEIGHT: u32 = 22;
/// Headroom above the highest value, as a factor.
const HEADROOM: f64 = 1.12;
/// Above this many points a series is thinned (keeping each bucket's peak):
/// more points than pixels only make the file big.
const MAX_POINTS_PER_SERIES: usize = 1500;
/// Sessions at least this long get a time axis in minutes (h:mm labels).
const MINUTES_FROM_S: f64 = 600.0;
/// Sessions at least this long get a time axis in hours.
const HOURS_FROM_S: f64 = 12.0 * 3600.0;

/// Font family: the viewer picks its sans-serif font.
const FONT: &str = "sans-serif";
/// Title font size (plotters px).
const TITLE_SIZE: f64 = 20.0;
/// Tick labels, legends and axis descriptions (plotters px).
const LABEL_SIZE: f64 = 15.0;
/// Series line width, px.
const LINE_WIDTH: u32 = 2;
/// Length of a legend's line sample, px.
const LEGEND_SAMPLE: i32 = 24;
/// Spacing of legend entries, px.
const LEGEND_LINE: i32 = 20;

/// kbit/s actually sent.
pub const SENT_COLOR: RGBColor = RGBColor(31, 119, 180);
/// The encoder's target.
pub const TARGET_COLOR: RGBColor = RGBColor(255, 127, 14);
/// The link estimate.
pub const LINK_COLOR: RGBColor = RGBColor(44, 160, 44);
/// Buffer latency.
pub const BUFFER_COLOR: RGBColor = RGBColor(0, 119, 119);
/// Congestion.
pub const CONGESTION_COLOR: RGBColor = RGBColor(214, 39, 40);
/// Video dropped for congestion.
pub const DROP_CONGESTION_COLOR: RGBColor = RGBColor(148, 103, 189);
/// Video dropped while disconnected.
pub const DROP_DISCONNECTED_COLOR: RGBColor = RGBColor(140, 86, 75);
/// Audio frames dropped.
pub const DROP_AUDIO_COLOR: RGBColor = RGBColor(227, 119, 194);
/// Packets a recorder lost.
pub const DROP_RECORD_COLOR: RGBColor = RGBColor(127, 127, 127);
/// Reconnect marks.
pub const RECONNECT_COLOR: RGBColor = RGBColor(120, 0, 0);
/// Grid lines.
const GRID_COLOR: RGBColor = RGBColor(225, 225, 225);

/// Background band colour and opacity of each link state: faint enough
/// that lines stay readable on top, live the faintest (it is the normal).
pub fn state_color(state: State) -> (RGBColor, f64) {
    match state {
        State::Connecting => (RGBColor(240, 200, 0), 0.22),
        State::Live => (RGBColor(44, 160, 44), 0.06),
        State::Reconnecting => (RGBColor(230, 60, 40), 0.20),
        State::Stopped => (RGBColor(120, 120, 120), 0.15),
        State::Failed => (RGBColor(90, 0, 0), 0.30),
    }
}

/// The unit of the time axis. Why not always seconds: plotters puts ticks
/// at round numbers of the axis unit, and 1000 s is not a round time; in
/// minutes, ticks fall on 0:20, 0:40, 1:00.
#[derive(Clone, Copy, Debug, PartialEq)]
enum TimeUnit {
    Seconds,
    Minutes,
    Hours,
}

impl TimeUnit {
    fn for_span(t_max_s: f64) -> Self {
        if t_max_s >= HOURS_FROM_S {
            Self::Hours
        } else if t_max_s >= MINUTES_FROM_S {
            Self::Minutes
        } else {
            Self::Seconds
        }
    }

    /// Axis value of `t_s` seconds.
    fn x(self, t_s: f64) -> f64 {
        match self {
            Self::Seconds => t_s,
            Self::Minutes => t_s / 60.0,
            Self::Hours => t_s / 3600.0,
        }
    }

    fn label(self, x: f64) -> String {
        match self {
            Self::Seconds => format!("{x:.0}"),
            Self::Minutes => {
                let total = (x * 60.0).round().max(0.0) as u64;
                if total.is_multiple_of(60) {
                    format!("{}:{:02}", total / 3600, total / 60 % 60)
                } else {
                    clock(total as f64)
                }
            }
            Self::Hours if x.fract() == 0.0 => format!("{x:.0} h"),
            Self::Hours => format!("{x:.1} h"),
        }
    }

    fn desc(self) -> &'static str {
        match self {
            Self::Seconds => "time since start (s)",
            Self::Minutes => "time since start (h:mm)",
            Self::Hours => "time since start (hours)",
        }
    }
}

/// One line of a panel.
struct Series {
    label: &'static str,
    color: RGBColor,
    /// Runs of points (a gap in the data splits the line).
    runs: Vec<Vec<(f64, f64)>>,
    /// Drawn against the right axis (0..1).
    secondary: bool,
}

/// One panel: a y unit, its series, and a floor for the y range (so an
/// all-zero series sits at the bottom rather than in the middle).
struct Panel {
    unit: &'static str,
    right_unit: Option<&'static str>,
    min_top: f64,
    height: u32,
    series: Vec<Series>,
}

fn err(e: impl std::fmt::Display) -> String {
    format!("drawing the report: {e}")
}

fn font(size: f64) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

/// Height of the picture for `outputs` sets of panels.
pub fn height(outputs: usize) -> u32 {
    let one = TITLE_HEIGHT + THROUGHPUT_HEIGHT + BUFFER_HEIGHT + DROPS_HEIGHT;
    let n = u32::try_from(outputs.max(1)).unwrap_or(u32::MAX);
    2 * MARGIN + n * one + (n - 1) * OUTPUT_GAP + TIME_AXIS_DESC_HEIGHT
}

/// Draws `timelines` stacked, on one time axis from 0 to the latest sample,
/// and returns the SVG text.
pub fn svg(timelines: &[&Timeline]) -> Result<String, String> {
    let mut buf = String::new();
    {
        let root =
            SVGBackend::with_string(&mut buf, (WIDTH, height(timelines.len()))).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root.margin(MARGIN, MARGIN, MARGIN, MARGIN);
        // At least one second, so an instant-long file still has an axis.
        let t_max = timelines.iter().map(|t| t.end_s()).fold(1.0f64, f64::max);
        let mut rest = root;
        for (i, t) in timelines.iter().enumerate() {
            let last = i + 1 == timelines.len();
            if i > 0 {
                rest = rest.split_vertically(OUTPUT_GAP).1;
            }
            let (title, below) = rest.split_vertically(TITLE_HEIGHT);
            draw_title(&title, t)?;
            let panels = panels(t);
            let mut area = below;
            for (k, p) in panels.iter().enumerate() {
                let bottom = last && k + 1 == panels.len();
                let h = p.height + if bottom { TIME_AXIS_DESC_HEIGHT } else { 0 };
                let (this, next) = area.split_vertically(h);
                draw_panel(&this, p, t, t_max, k == 0, bottom)?;
                area = next;
            }
            rest = area;
        }
        rest.present().map_err(err)?;
    }
    Ok(buf)
}

/// The three panels of one output, with only the series its stats have.
fn panels(t: &Timeline) -> Vec<Panel> {
    let gauge = |f: fn(&Sample) -> Option<f64>| t.gauge(f);
    // A recorder has no link: only what it lost itself is its drops.
    let rate = |f: fn(&Sample) -> Option<u64>, for_recorder: bool| {
        let r = t.rate(f);
        if r.is_empty() || t.recorder != for_recorder {
            Vec::new()
        } else {
            vec![r]
        }
    };
    // A recorder's `kbps` is always 0: what it wrote comes from bytes.
    let sent = if t.recorder {
        let w = t.written_kbps();
        if w.is_empty() {
            Vec::new()
        } else {
            vec![w]
        }
    } else {
        gauge(|s| s.kbps)
    };
    let line = |label, color, runs, secondary| Series {
        label,
        color,
        runs,
        secondary,
    };
    let keep = |series: Vec<Series>| -> Vec<Series> {
        series.into_iter().filter(|s| !s.runs.is_empty()).collect()
    };
    let buffer = keep(vec![
        line("buffer (ms)", BUFFER_COLOR, gauge(|s| s.buffer_ms), false),
        line(
            "congestion (0..1, right)",
            CONGESTION_COLOR,
            gauge(|s| s.congestion),
            true,
        ),
    ]);
    let has_congestion = buffer.iter().any(|s| s.secondary);
    vec![
        Panel {
            unit: "kbit/s",
            right_unit: None,
            min_top: 100.0,
            height: THROUGHPUT_HEIGHT,
            series: keep(vec![
                line(
                    if t.recorder { "written" } else { "sent" },
                    SENT_COLOR,
                    sent,
                    false,
                ),
                line(
                    "encoder target",
                    TARGET_COLOR,
                    gauge(|s| s.video_bitrate_kbps),
                    false,
                ),
                line("link estimate", LINK_COLOR, gauge(|s| s.link_kbps), false),
            ]),
        },
        Panel {
            unit: "buffer, ms",
            right_unit: has_congestion.then_some("congestion"),
            min_top: 100.0,
            height: BUFFER_HEIGHT,
            series: buffer,
        },
        Panel {
            unit: "dropped per s",
            right_unit: None,
            min_top: 1.0,
            height: DROPS_HEIGHT,
            series: keep(vec![
                line(
                    "video (congestion)",
                    DROP_CONGESTION_COLOR,
                    rate(|s| s.video_dropped_congestion, false),
                    false,
                ),
                line(
                    "video (disconnected)",
                    DROP_DISCONNECTED_COLOR,
                    rate(|s| s.video_dropped_disconnected, false),
                    false,
                ),
                line(
                    "audio frames",
                    DROP_AUDIO_COLOR,
                    rate(|s| s.audio_frames_dropped, false),
                    false,
                ),
                line(
                    "recorder packets",
                    DROP_RECORD_COLOR,
                    rate(|s| s.record_packets_dropped, true),
                    false,
                ),
            ]),
        },
    ]
}

/// "rtmp://host/app/**** · 40 s, ended stopped", a line of totals, and a
/// line of state swatches (only the states that occur) and the reconnect
/// mark.
fn draw_title(area: &DrawingArea<SVGBackend, Shift>, t: &Timeline) -> Result<(), String> {
    let reconnects = t.total(|s| s.reconnects);
    let mut title = format!("{} · {}", t.name, duration_label(t.end_s()));
    if let Some(state) = t.samples.iter().rev().find_map(|s| s.state) {
        title.push_str(&format!(", ended {}", state.name()));
    }
    let totals = if t.recorder {
        format!(
            "recorder: {} packets lost",
            t.total(|s| s.record_packets_dropped)
        )
    } else {
        format!(
            "{reconnects} reconnect{} · video dropped: {} for congestion, {} while disconnected · audio frames dropped: {}",
            if reconnects == 1 { "" } else { "s" },
            t.total(|s| s.video_dropped_congestion),
            t.total(|s| s.video_dropped_disconnected),
            t.total(|s| s.audio_frames_dropped),
        )
    };
    area.draw(&Text::new(
        title,
        (0, 2),
        (FONT, TITLE_SIZE, FontStyle::Bold)
            .into_font()
            .color(&BLACK),
    ))
    .map_err(err)?;
    area.draw(&Text::new(totals, (0, 28), font(LABEL_SIZE)))
        .map_err(err)?;

    let y = 50;
    area.draw(&Text::new("link state:", (0, y - 1), font(LABEL_SIZE)))
        .map_err(err)?;
    let mut x = 76;
    let spans = t.state_spans();
    for state in State::ALL {
        if !spans.iter().any(|s| s.state == state) {
            continue;
        }
        let (c, alpha) = state_color(state);
        // A swatch at twice the band's opacity: a small patch at the band's
        // own opacity would be invisible.
        area.draw(&Rectangle::new(
            [(x, y), (x + 16, y + 12)],
            c.mix((alpha * 2.0).min(1.0)).filled(),
        ))
        .map_err(err)?;
        area.draw(&Text::new(state.name(), (x + 20, y - 1), font(LABEL_SIZE)))
            .map_err(err)?;
        x += 30 + text_width(state.name());
    }
    if reconnects > 0 {
        area.draw(&PathElement::new(
            [(x + 6, y - 2), (x + 6, y + 14)],
            RECONNECT_COLOR.stroke_width(LINE_WIDTH),
        ))
        .map_err(err)?;
        area.draw(&Text::new("reconnect", (x + 12, y - 1), font(LABEL_SIZE)))
            .map_err(err)?;
    }
    Ok(())
}

/// Rough width of a label, px (the viewer's font decides the real one).
fn text_width(s: &str) -> i32 {
    let chars = i32::try_from(s.chars().count()).unwrap_or(i32::MAX / 8);
    chars.saturating_mul(7)
}

fn duration_label(s: f64) -> String {
    if s < MINUTES_FROM_S {
        format!("{s:.0} s")
    } else {
        clock(s)
    }
}

fn clock(s: f64) -> String {
    let total = s.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", total / 3600, total / 60 % 60, total % 60)
}

fn draw_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    panel: &Panel,
    t: &Timeline,
    t_max: f64,
    first: bool,
    bottom: bool,
) -> Result<(), String> {
    let (plot, legend) = area.split_horizontally(WIDTH - 2 * MARGIN - LEGEND_WIDTH);
    let y_top = panel
        .series
        .iter()
        .filter(|s| !s.secondary)
        .flat_map(|s| s.runs.iter().flatten().map(|p| p.1))
        .fold(panel.min_top / HEADROOM, f64::max)
        * HEADROOM;
    let x_label_height = X_LABEL_HEIGHT + if bottom { TIME_AXIS_DESC_HEIGHT } else { 0 };
    let unit = TimeUnit::for_span(t_max);
    let x = |t_s: f64| unit.x(t_s);
    let mut chart = ChartBuilder::on(&plot)
        .margin_top(6)
        .x_label_area_size(x_label_height)
        .y_label_area_size(Y_LABEL_WIDTH)
        .right_y_label_area_size(RIGHT_LABEL_WIDTH)
        .build_cartesian_2d(0.0..x(t_max), 0.0..y_top)
        .map_err(err)?
        .set_secondary_coord(0.0..x(t_max), 0.0..1.0);

    // Bands first, so the grid and the lines are drawn over them.
    chart
        .draw_series(t.state_spans().into_iter().map(|s| {
            let (c, alpha) = state_color(s.state);
            Rectangle::new(
                [(x(s.from_s), 0.0), (x(s.to_s), y_top)],
                c.mix(alpha).filled(),
            )
        }))
        .map_err(err)?;

    let x_fmt = |v: &f64| unit.label(*v);
    let y_fmt = |y: &f64| {
        if y_top < 10.0 {
            format!("{y:.1}")
        } else {
            format!("{y:.0}")
        }
    };
    let x_desc = if bottom { unit.desc() } else { "" };
    chart
        .configure_mesh()
        .x_labels(12)
        .y_labels(5)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_desc(x_desc)
        .y_desc(panel.unit)
        .label_style(font(LABEL_SIZE))
        .axis_desc_style(font(LABEL_SIZE))
        .bold_line_style(GRID_COLOR)
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(err)?;
    if let Some(unit) = panel.right_unit {
        chart
            .configure_secondary_axes()
            .y_labels(3)
            .y_label_formatter(&|y: &f64| format!("{y:.1}"))
            .y_desc(unit)
            .label_style(font(LABEL_SIZE))
            .axis_desc_style(font(LABEL_SIZE))
            .draw()
            .map_err(err)?;
    }

    let reconnects = t.reconnect_times();
    chart
        .draw_series(reconnects.iter().map(|&t_s| {
            PathElement::new(
                [(x(t_s), 0.0), (x(t_s), y_top)],
                RECONNECT_COLOR.stroke_width(LINE_WIDTH),
            )
        }))
        .map_err(err)?;

    for s in &panel.series {
        let style = s.color.stroke_width(LINE_WIDTH);
        for run in &s.runs {
            let points: Vec<(f64, f64)> = thin(run, MAX_POINTS_PER_SERIES)
                .into_iter()
                .map(|(t_s, v)| (x(t_s), v))
                .collect();
            if s.secondary {
                chart
                    .draw_secondary_series(LineSeries::new(points, style))
                    .map_err(err)?;
            } else if points.len() == 1 {
                // A lone point would be an invisible line.
                chart
                    .draw_series(
                        points
                            .into_iter()
                            .map(|p| Circle::new(p, 3, style.filled())),
                    )
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(LineSeries::new(points, style))
                    .map_err(err)?;
            }
        }
    }
    draw_legend(&legend, panel, first && !reconnects.is_empty())
}

/// The legend column: a line sample and a label per series.
fn draw_legend(
    area: &DrawingArea<SVGBackend, Shift>,
    panel: &Panel,
    with_reconnect: bool,
) -> Result<(), String> {
    let x = 8;
    let mut y = 14;
    let mut entry = |label: &str, color: RGBColor| -> Result<(), String> {
        area.draw(&PathElement::new(
            [(x, y), (x + LEGEND_SAMPLE, y)],
            color.stroke_width(LINE_WIDTH + 1),
        ))
        .map_err(err)?;
        area.draw(&Text::new(
            label.to_string(),
            (x + LEGEND_SAMPLE + 6, y),
            font(LABEL_SIZE).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(err)?;
        y += LEGEND_LINE;
        Ok(())
    };
    for s in &panel.series {
        entry(s.label, s.color)?;
    }
    if with_reconnect {
        entry("reconnect", RECONNECT_COLOR)?;
    }
    if panel.series.is_empty() {
        area.draw(&Text::new(
            "(no data in the stats)",
            (x, y),
            font(LABEL_SIZE).color(&RGBColor(120, 120, 120)),
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// At most about `max` points: each bucket of consecutive points keeps its
/// highest one, so a one-second spike in a day-long session still shows.
fn thin(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let bucket = points.len().div_ceil(max);
    points
        .chunks(bucket)
        .filter_map(|c| c.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_peaks_and_bounds_points() {
        let mut points: Vec<(f64, f64)> = (0..10_000).map(|i| (f64::from(i), 1.0)).collect();
        points[4321].1 = 99.0;
        let thinned = thin(&points, 1000);
        assert!(thinned.len() <= 1000);
        assert!(thinned.contains(&(4321.0, 99.0)));
        assert_eq!(thin(&points[..10], 1000).len(), 10);
    }

    #[test]
    fn clock_labels() {
        assert_eq!(clock(3725.4), "1:02:05");
        assert_eq!(duration_label(40.4), "40 s");
        assert_eq!(duration_label(7200.0), "2:00:00");
    }

    #[test]
    fn long_sessions_count_in_minutes_or_hours() {
        assert_eq!(TimeUnit::for_span(40.0), TimeUnit::Seconds);
        assert_eq!(TimeUnit::for_span(3.0 * 3600.0), TimeUnit::Minutes);
        assert_eq!(TimeUnit::Minutes.x(4800.0), 80.0);
        assert_eq!(TimeUnit::Minutes.label(80.0), "1:20");
        assert_eq!(TimeUnit::Minutes.label(2.5), "0:02:30");
        assert_eq!(TimeUnit::for_span(86_400.0), TimeUnit::Hours);
        assert_eq!(TimeUnit::Hours.label(6.0), "6 h");
        assert_eq!(TimeUnit::Hours.label(0.5), "0.5 h");
    }
}
