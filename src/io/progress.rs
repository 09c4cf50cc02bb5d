//! Progress bars on stderr, shown only where a person watches.

/// A progress bar of `total` steps drawn on stderr with `template`, when `wanted` and stderr
/// is a terminal; hidden otherwise.
pub fn progress_bar(total: u64, template: &str, wanted: bool) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal;
    let target = if wanted && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    bar.set_style(ProgressStyle::with_template(template).expect("a valid template"));
    bar
}
