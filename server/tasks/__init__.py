"""The screen task assistant (seed 001): the companion guides a task on the user's screen
step by step. The server plans (VLM analysis) and verifies (screen diff plus the VLM's
check); the client executes. Payment screens stop a task at once."""
