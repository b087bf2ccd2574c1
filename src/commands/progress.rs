//! Progress bars for the long commands, with rate and ETA, on stderr when
//! it is a terminal; hidden in pipes and CI, where the summary line is what
//! a reader wants.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

fn styled(total: Option<u64>, template: &str) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::with_draw_target(Some(total), target()),
        None => ProgressBar::with_draw_target(None, target()),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Bytes of input read, out of `total` when known (files; not stdin).
pub fn bytes(what: &str, total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(_) => styled(
            total,
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta})",
        ),
        None => styled(None, "{spinner} {msg} {bytes} ({bytes_per_sec})"),
    };
    bar.set_message(what.to_owned());
    bar
}

/// Log records folded, out of `total`.
pub fn records(what: &str, total: u64) -> ProgressBar {
    let bar = styled(
        Some(total),
        "{msg} [{bar:30}] {human_pos}/{human_len} records ({per_sec}, ETA {eta})",
    );
    bar.set_message(what.to_owned());
    bar
}
