//! What the service example saw, kept whole: each call's start, time taken
//! and outcome, and each breaker's transitions. The strip and the picture
//! at the end are drawn from it, so a half-open spell of a few milliseconds
//! shows as surely as an outage.

use std::error::Error;
use std::path::Path;
use std::sync::Mutex;

use breakerbox::State;
use plotters::prelude::*;

/// How a call through a breaker ended.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Succeeded,
    Failed,
    Rejected,
}

/// One call, as its client saw it.
pub struct CallMark {
    pub endpoint: usize,
    /// Seconds since the run began, when the call began.
    pub at: f64,
    pub took_ms: f64,
    pub ending: Ending,
    pub slow: bool,
}

/// A stretch of time a breaker spent in one state, in seconds.
struct Span {
    from: f64,
    to: f64,
    state: State,
}

/// Calls and transitions, recorded from many threads.
#[derive(Default)]
pub struct Timeline {
    calls: Mutex<Vec<CallMark>>,
    /// `(endpoint, seconds since the run began, the state entered)`, each
    /// breaker's in the order its listener heard them.
    transitions: Mutex<Vec<(usize, f64, State)>>,
}

impl Timeline {
    pub fn call(&self, mark: CallMark) {
        self.calls.lock().unwrap().push(mark);
    }

    pub fn transition(&self, endpoint: usize, at: f64, to: State) {
        self.transitions.lock().unwrap().push((endpoint, at, to));
    }

    /// One breaker's states from the start (closed) to `end`.
    fn spans(&self, endpoint: usize, end: f64) -> Vec<Span> {
        let mut spans = Vec::new();
        let (mut from, mut state) = (0.0, State::Closed);
        let transitions = self.transitions.lock().unwrap();
        for &(_, at, to) in transitions.iter().filter(|t| t.0 == endpoint) {
            spans.push(Span {
                from,
                to: at,
                state,
            });
            (from, state) = (at, to);
        }
        spans.push(Span {
            from,
            to: end,
            state,
        });
        spans
    }

    /// A mark per `step` seconds up to `end`: `h` if the breaker was
    /// half-open at any time in the step, else `X` if it was open at any
    /// time, else `.`.
    pub fn strip(&self, endpoint: usize, step: f64, end: f64) -> String {
        let spans = self.spans(endpoint, end);
        let steps = (end / step).round() as usize;
        (0..steps)
            .map(|i| {
                let (from, to) = (i as f64 * step, (i + 1) as f64 * step);
                let during = |state| {
                    spans
                        .iter()
                        .any(|s| s.state == state && s.from < to && s.to >= from)
                };
                if during(State::HalfOpen) {
                    'h'
                } else if during(State::Open) {
                    'X'
                } else {
                    '.'
                }
            })
            .collect()
    }

    /// Draws one chart per endpoint into an SVG file: every call as a dot
    /// at its start and its time taken, coloured by its ending, over the
    /// breaker's open and half-open spells, with the service's phases
    /// marked along the top.
    pub fn draw(
        &self,
        path: &Path,
        endpoints: &[&str],
        phases: &[(&str, f64)],
        slow_ms: f64,
        end: f64,
    ) -> Result<(), Box<dyn Error>> {
        const SUCCEEDED: RGBColor = RGBColor(46, 139, 87);
        const SLOW: RGBColor = RGBColor(230, 145, 20);
        const FAILED: RGBColor = RGBColor(200, 40, 40);
        const REJECTED: RGBColor = RGBColor(110, 110, 110);
        const OPEN: RGBColor = RGBColor(240, 190, 190);
        const HALF_OPEN: RGBColor = RGBColor(250, 225, 120);
        const TOP_MS: f64 = 400.0;

        let root = SVGBackend::new(path, (1000, 300 * endpoints.len() as u32)).into_drawing_area();
        root.fill(&WHITE)?;
        let calls = self.calls.lock().unwrap();
        for (endpoint, area) in root.split_evenly((endpoints.len(), 1)).iter().enumerate() {
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("breaker \"{}\"", endpoints[endpoint]),
                    ("sans-serif", 18),
                )
                .margin(8)
                .x_label_area_size(32)
                .y_label_area_size(48)
                .build_cartesian_2d(0.0..end, 0.0..TOP_MS)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .light_line_style(WHITE)
                .x_label_formatter(&|s| format!("{s:.0}"))
                .y_label_formatter(&|ms| format!("{ms:.0}"))
                .x_desc("seconds since the start")
                .y_desc("call time (ms)")
                .draw()?;

            // The breaker's spells away from closed; a half-open one of a
            // few milliseconds is widened to stay visible.
            let spells = self.spans(endpoint, end);
            for (state, colour, label) in [
                (State::Open, OPEN, "breaker open"),
                (State::HalfOpen, HALF_OPEN, "breaker half-open"),
            ] {
                chart
                    .draw_series(spells.iter().filter(|s| s.state == state).map(|s| {
                        let to = s.to.max(s.from + 0.04);
                        Rectangle::new([(s.from, 0.0), (to, TOP_MS)], colour.filled())
                    }))?
                    .label(label)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                    });
            }

            // The service's phases: a line where each begins, its name on top.
            let mut begins = 0.0;
            for &(name, secs) in phases {
                chart.draw_series([PathElement::new(
                    vec![(begins, 0.0), (begins, TOP_MS)],
                    BLACK.mix(0.4),
                )])?;
                chart.draw_series([Text::new(
                    format!("service {name}"),
                    (begins + 0.08, TOP_MS - 8.0),
                    ("sans-serif", 13),
                )])?;
                begins += secs;
            }
            chart
                .draw_series([PathElement::new(
                    vec![(0.0, slow_ms), (end, slow_ms)],
                    SLOW.mix(0.6),
                )])?
                .label(format!("slow from {slow_ms} ms"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], SLOW));

            let mine = || calls.iter().filter(move |c| c.endpoint == endpoint);
            for (kind, colour, label) in [
                ((Ending::Succeeded, false), SUCCEEDED, "succeeded"),
                ((Ending::Succeeded, true), SLOW, "succeeded, slow"),
                ((Ending::Failed, false), FAILED, "failed"),
                ((Ending::Failed, true), FAILED, "failed, slow"),
            ] {
                let dots = mine()
                    .filter(|c| (c.ending, c.slow) == kind)
                    .map(|c| Circle::new((c.at, c.took_ms.min(TOP_MS)), 2, colour.filled()));
                let series = chart.draw_series(dots)?;
                if kind != (Ending::Failed, true) {
                    series
                        .label(label)
                        .legend(move |(x, y)| Circle::new((x + 6, y), 3, colour.filled()));
                }
            }
            chart
                .draw_series(
                    mine()
                        .filter(|c| c.ending == Ending::Rejected)
                        .map(|c| Cross::new((c.at, 4.0), 3, REJECTED)),
                )?
                .label("rejected by the breaker")
                .legend(move |(x, y)| Cross::new((x + 6, y), 3, REJECTED));

            chart
                .configure_series_labels()
                // Below the phase names, right of the calls that reach 200 ms.
                .position(SeriesLabelPosition::Coordinate(752, 24))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .label_font(("sans-serif", 12))
                .draw()?;
        }
        root.present()?;
        Ok(())
    }
}
