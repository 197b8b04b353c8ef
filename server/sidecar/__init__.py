"""Running under a parent process (the Tauri desktop app): a ready line the parent can
trust, one instance per data folder, exit with the parent, a per-launch token."""
