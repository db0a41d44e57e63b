"""Client tools that act as a user of a real Supabase project with supabase-py (scripts/submit, scripts/watch)."""
