//! Charts drawn on the server as plain SVG: the daily chart of a project and the funnel.
//!
//! Plain SVG from a small module rather than a plotting crate: two chart shapes, a few dozen
//! elements each, with class names the stylesheet colours and tests find. Every text that goes
//! into the markup passes through [`escape`] (today only dates, numbers and our own labels do,
//! but a label is one refactor away from a subject line).

use std::fmt::Write as _;

use chrono::NaiveDate;

/// Escapes text for an SVG/HTML element or attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// One day of the daily chart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayPoint {
    /// The day (UTC).
    pub day: NaiveDate,
    /// Messages sent (first event that day).
    pub sent: u64,
    /// Of those, delivered (complaints included: a complaint implies arrival).
    pub delivered: u64,
    /// Of those, bounced or dropped.
    pub bounced: u64,
    /// Opens by people.
    pub human_opens: u64,
}

/// One line of the chart: its CSS class, its label, and its value at a point.
type Series = (&'static str, &'static str, fn(&DayPoint) -> u64);

/// The chart's lines, in drawing order.
const SERIES: [Series; 4] = [
    ("sent", "sent", |p| p.sent),
    ("delivered", "delivered", |p| p.delivered),
    ("bounced", "bounced", |p| p.bounced),
    ("opens", "human opens", |p| p.human_opens),
];

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;

/// The daily chart: one line per series, one marked point per day of `points`.
pub fn daily_chart(points: &[DayPoint]) -> String {
    let max = points
        .iter()
        .flat_map(|point| SERIES.iter().map(move |(_, _, value)| value(point)))
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let x = |index: usize| {
        if points.len() <= 1 {
            LEFT + plot_width / 2.0
        } else {
            LEFT + plot_width * index as f64 / (points.len() - 1) as f64
        }
    };
    let y = |value: u64| TOP + plot_height * (1.0 - value as f64 / max as f64);

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart daily" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Messages per day" data-days="{}" xmlns="http://www.w3.org/2000/svg">"#,
        points.len()
    );
    // Axes and the scale: zero and the largest value.
    let bottom = TOP + plot_height;
    let _ = write!(
        svg,
        r#"<g class="axis"><line x1="{LEFT}" y1="{bottom}" x2="{}" y2="{bottom}"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/><text x="{}" y="{}" text-anchor="end">{max}</text><text x="{}" y="{bottom}" text-anchor="end">0</text>"#,
        WIDTH - RIGHT,
        LEFT - 6.0,
        TOP + 4.0,
        LEFT - 6.0,
    );
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let label_y = bottom + 18.0;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{label_y}" text-anchor="start">{}</text>"#,
            LEFT,
            escape(&first.day.to_string())
        );
        if points.len() > 1 {
            let _ = write!(
                svg,
                r#"<text x="{}" y="{label_y}" text-anchor="end">{}</text>"#,
                WIDTH - RIGHT,
                escape(&last.day.to_string())
            );
        }
    }
    svg.push_str("</g>");
    for (class, label, value) in SERIES {
        let line: Vec<String> = points
            .iter()
            .enumerate()
            .map(|(index, point)| format!("{:.1},{:.1}", x(index), y(value(point))))
            .collect();
        let _ = write!(
            svg,
            r#"<g class="series {class}"><polyline points="{}"/>"#,
            line.join(" ")
        );
        for (index, point) in points.iter().enumerate() {
            let _ = write!(
                svg,
                r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="2.5" data-day="{}"><title>{} {}: {}</title></circle>"#,
                x(index),
                y(value(point)),
                point.day,
                escape(&point.day.to_string()),
                escape(label),
                value(point)
            );
        }
        svg.push_str("</g>");
    }
    // The legend, under the dates.
    for (position, (class, label, _)) in SERIES.iter().enumerate() {
        let legend_x = LEFT + 150.0 * position as f64;
        let legend_y = HEIGHT - 4.0;
        let _ = write!(
            svg,
            r#"<g class="legend {class}"><rect x="{legend_x}" y="{}" width="10" height="10"/><text x="{}" y="{legend_y}">{}</text></g>"#,
            legend_y - 9.0,
            legend_x + 14.0,
            escape(label)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One step of the funnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunnelStep {
    /// What the step counts ("sent", "delivered", ...).
    pub label: &'static str,
    /// Messages that reached it.
    pub count: u64,
}

const FUNNEL_ROW: f64 = 34.0;
const FUNNEL_LABEL: f64 = 90.0;
const FUNNEL_BAR: f64 = 480.0;

/// The funnel: one bar per step, as wide as its share of the first step, with the count and
/// that share written beside it.
pub fn funnel(steps: &[FunnelStep]) -> String {
    let first = steps.first().map_or(0, |step| step.count);
    let height = FUNNEL_ROW * steps.len() as f64;
    let width = FUNNEL_LABEL + FUNNEL_BAR + 150.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart funnel" viewBox="0 0 {width} {height}" role="img" aria-label="Funnel" xmlns="http://www.w3.org/2000/svg">"#
    );
    for (index, step) in steps.iter().enumerate() {
        let share = if first == 0 {
            0.0
        } else {
            step.count as f64 / first as f64
        };
        let top = FUNNEL_ROW * index as f64;
        let bar = (FUNNEL_BAR * share).max(if step.count > 0 { 2.0 } else { 0.0 });
        let _ = write!(
            svg,
            r#"<g class="step" data-step="{label}" data-count="{count}"><text x="0" y="{}">{label}</text><rect x="{FUNNEL_LABEL}" y="{}" width="{bar:.1}" height="22"/><text x="{}" y="{}">{count} ({:.1}%)</text></g>"#,
            top + 16.0,
            top + 2.0,
            FUNNEL_LABEL + bar + 8.0,
            top + 16.0,
            share * 100.0,
            label = escape(step.label),
            count = step.count,
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, n).unwrap()
    }

    #[test]
    fn the_daily_chart_marks_one_point_per_day_on_every_line() {
        let points: Vec<DayPoint> = (1..=7)
            .map(|n| DayPoint {
                day: day(n),
                sent: u64::from(n) * 10,
                delivered: u64::from(n) * 9,
                bounced: 1,
                human_opens: u64::from(n),
            })
            .collect();
        let svg = daily_chart(&points);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"data-days="7""#));
        assert_eq!(svg.matches("<circle").count(), 7 * 4);
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert_eq!(svg.matches(r#"data-day="2026-11-03""#).count(), 4);
        // The scale tops at the largest value, and the first and last days are labelled.
        assert!(svg.contains(">70</text>"));
        assert!(svg.contains(">2026-11-01</text>") && svg.contains(">2026-11-07</text>"));
        assert!(svg.contains("<title>2026-11-07 sent: 70</title>"));
    }

    #[test]
    fn the_highest_value_is_at_the_top_and_zero_at_the_bottom() {
        let points = [
            DayPoint {
                day: day(1),
                ..DayPoint::default()
            },
            DayPoint {
                day: day(2),
                sent: 5,
                ..DayPoint::default()
            },
        ];
        let svg = daily_chart(&points);
        let bottom = format!("{:.1}", TOP + HEIGHT - TOP - BOTTOM);
        assert!(
            svg.contains(&format!(
                r#"<polyline points="{LEFT:.1},{bottom} {:.1},{TOP:.1}"/>"#,
                WIDTH - RIGHT
            )),
            "{svg}"
        );
    }

    #[test]
    fn an_empty_or_one_day_chart_still_draws() {
        assert!(daily_chart(&[]).contains(r#"data-days="0""#));
        let one = daily_chart(&[DayPoint {
            day: day(1),
            ..DayPoint::default()
        }]);
        assert_eq!(one.matches("<circle").count(), 4);
    }

    #[test]
    fn funnel_bars_are_shares_of_the_first_step() {
        let svg = funnel(&[
            FunnelStep {
                label: "sent",
                count: 4,
            },
            FunnelStep {
                label: "delivered",
                count: 3,
            },
            FunnelStep {
                label: "opened",
                count: 1,
            },
            FunnelStep {
                label: "clicked",
                count: 0,
            },
        ]);
        assert_eq!(svg.matches(r#"<g class="step""#).count(), 4);
        assert!(svg.contains(r#"width="480.0""#));
        assert!(svg.contains(r#"width="360.0""#));
        assert!(svg.contains(">3 (75.0%)</text>"));
        assert!(svg.contains(r#"data-step="clicked" data-count="0""#));
        assert!(funnel(&[]).ends_with("</svg>"));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}
