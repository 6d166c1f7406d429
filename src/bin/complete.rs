//! `kubectl_complete-servicecidr`: the executable kubectl (1.26+) runs to complete
//! `kubectl servicecidr ...`. All the logic lives in `kubectl_servicecidr::complete`.

use std::io::Write;

use kubectl_servicecidr::complete;

fn main() {
    let words: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    let out = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            let out = runtime.block_on(complete::complete(&words));
            // Do not wait for anything still running (a credential plugin, a stuck connection).
            runtime.shutdown_background();
            out
        }
        Err(_) => format!(":{}\n", complete::DIRECTIVE_NO_FILE_COMP),
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}
