"""The instructor's side: grade a whole class at once.

`kubelab class grade --lab LAB --submissions DIR` grades every learner's evidence file (no node touched);
`kubelab class grade --lab LAB --roster roster.csv` grades every learner's nodes live, over SSH. Both run
one worker process per learner, at most `--jobs` at a time, each stopped at `--timeout`; every result is
written as it comes, a re-run resumes, and the class outputs (gradebook, pass rates, copy report) are
written at the end.

Modules: `learners` (who is in the class and what to grade them from), `worker` (grade one learner, in
its own process), `pool` (bounded concurrency with a timeout per learner), `store` (one JSON per learner,
resume), `copies` (shared machine-ids and cluster identities), `reports` (gradebook, pass rates, class
report), `run` (the whole run), `cli` (the `class_app` typer sub-app)."""
