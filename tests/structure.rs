//! rubric's layering, checked from the source by scripts/check_structure.py: no import circle
//! between files or folders, task/ importing neither metric/ nor filter/, model/ importing
//! nothing of task/, and no function over 120 lines but the ones it lists with their reason.

mod common;

#[test]
fn layers_hold() {
    let out = std::process::Command::new("python3")
        .arg(common::crate_root().join("scripts/check_structure.py"))
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
