//! The `ember` binary: parses the command line and reports errors with their context.

use clap::Parser;

fn main() -> std::process::ExitCode {
    quiet_device_select_layer();
    let cli = ember_cli::Cli::parse();
    match ember_model::on_compute_threads(move || ember_cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Turns off Mesa's Vulkan device-select layer for this process unless the user set
/// `NODEVICE_SELECT` themselves. Ember lists the adapters itself and picks one by its own rule,
/// so the layer (which only reorders the list) adds nothing, and on a machine without a display
/// server it asks Wayland for the default GPU, whose library then printed "error:
/// XDG_RUNTIME_DIR is invalid or not set in the environment." twice in every command — into
/// the main job's chat, after "ember>" (Debian 12 with Mesa's layer installed, 2026-12-06).
fn quiet_device_select_layer() {
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: the first thing `main` does, before any thread exists, so nothing reads the
        // environment while it changes.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("NODEVICE_SELECT", "1");
        }
    }
}
