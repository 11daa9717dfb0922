// The approval as GET /approvals/{id} answers it, and how its 409 / 412 / 403 read.
import { ApiError } from './api'
import { describeError } from './errors'

export interface ApprovalStep {
  index: number
  name: string
  mode: 'all' | 'any' | 'quorum' | string
  quorum?: number | null
  on_reject?: string
  status: string
  approvers: string[]
  answers: Record<string, 'approve' | 'reject' | string>
  notes?: string[]
  fallback?: string
}

export interface TrailEntry {
  at: string
  actor: string | null
  action: string
  comment: string | null
  step: number | null
  to_user?: string // delegated: to whom
  terms_hash: string
  terms_version: number
}

export interface Approval {
  id: string
  record_type: string
  record_id: string
  status: string
  flow_id: string | null
  flow_name: string | null
  submitter: string
  terms: Record<string, unknown>
  terms_hash: string
  terms_version: number
  current_step: number | null
  pending_approvers: string[]
  cc: string[]
  steps: ApprovalStep[]
  trail: TrailEntry[]
  submitted_at: string
  finished_at: string | null
}

type Translate = (key: string, values?: Record<string, unknown>) => string

/** A failed answer in the user's language: the service's 409 / 412 / 403 / 404 say why. */
export function describeAnswerError(error: unknown, t: Translate, approval: Approval | null): string {
  if (error instanceof ApiError) {
    const detail = error.problem.detail ?? ''
    if (error.status === 409 && (error.problem.terms_hash || /terms changed/i.test(detail))) {
      return t('approvals.errors.staleTerms', { version: approval?.terms_version ?? '' })
    }
    if (error.status === 409 && /already answered/i.test(detail)) return t('approvals.errors.alreadyAnswered')
    if (error.status === 412) {
      const status = approval ? t(`approvals.statuses.${approval.status}`) : detail
      return t('approvals.errors.notPending', { status })
    }
    if (error.status === 403 && /own submission/i.test(detail)) return t('approvals.errors.ownSubmission')
    if (error.status === 404) return t('approvals.errors.notAsked')
  }
  return describeError(error, t)
}

/** A terms value for display: text as is, anything else as compact JSON. */
export function showValue(value: unknown): string {
  if (value === null || value === undefined) return '—'
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  return JSON.stringify(value, null, 1)
}
