"""The evaluation harness: scores a recommender on a set of assessments with rules that need no model.

    cases      the assessments in tests/eval/*.json (insert bodies, as a frontend sends them)
    language   which of en, pt, es, fr, de a text is in (function words, no model, no download)
    rules      what a good recommendation set is, rule by rule
    __main__   `scripts/eval`: run the fallback (default) or an OpenAI-compatible server (--ai) and report

docs/quality.md says what each rule means, how to run it against a real provider, and the figures.
"""
