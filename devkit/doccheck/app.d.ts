// What the snippets in docs/ take from the app around them. The types come from docs/frontend.md.
import type { SupabaseClient } from '@supabase/supabase-js'
import type { AssessmentStatusChanged, ResultTest, TestAssessment } from './frontend-types.mjs'

declare global {
  const SUPABASE_URL: string
  const SUPABASE_ANON_KEY: string
  const email: string
  const password: string
  const supabase: SupabaseClient
  const assessment: TestAssessment
  const id: string

  function showFieldError(field: string | null, message: string, hint: string | undefined): void
  function blockSubmitFor(seconds: number): void
  function showNotice(text: string | undefined): void
  function retryLater(error: unknown): void
  function showProcessing(event: AssessmentStatusChanged): void
  function showRecommendations(result: ResultTest | null): void
  function showFailed(event: AssessmentStatusChanged): void
  function handleFinal(status: 'completed' | 'failed'): void
  function pollStatusInstead(error?: Error): void
}
