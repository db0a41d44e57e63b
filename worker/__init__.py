"""The AI worker: consumes assessment_submitted jobs from pgmq and writes recommendations."""
