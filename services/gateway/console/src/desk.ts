// The agents' desk (console-desk): the service desk's tickets, SLA clocks and knowledge base.
export const TICKET_STATUSES = ['new', 'open', 'pending', 'on_hold', 'solved', 'closed'] as const
export const TICKET_PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const
export const QUEUE_VIEWS = ['mine', 'groups', 'unassigned', 'all'] as const
export type QueueView = typeof QUEUE_VIEWS[number]
export type SlaState = 'none' | 'ok' | 'warning' | 'breached'

export interface SlaSummary { state: SlaState; next_target: string | null; next_due_at: string | null; breached_targets: string[] }

export interface TicketEntry {
  id: string; seq: number; kind: string; public: boolean | null; author_kind: string | null
  author_id: string | null; body: string | null; from: string | null; to: string | null; at: string
}

export interface Ticket {
  id: string; number: string; subject: string; requester_email: string; requester_name: string | null
  status: string; priority: string; type: string | null; category: string | null; tags: string[]
  assignee_id: string | null; group_id: string | null; channel: string; customer_id: string | null
  created_at: string; updated_at: string; entries?: TicketEntry[]; sla?: SlaSummary
}

export interface SlaClock {
  target: string; minutes: number; business: boolean; state: string; due_at: string | null
  elapsed_seconds: number; remaining_seconds: number; paused: boolean; breached: boolean
  breached_at: string | null; achieved_at: string | null
  warnings: { threshold: number; at: string | null; passed: boolean }[]
}

/** `GET /tickets/{id}/sla`: the policy that applies and each target's clock now. */
export interface TicketSla {
  ticket_id: string; policy_id: string | null; policy_name: string | null; computed_at: string
  clocks: Record<string, SlaClock>
}

export const SLA_TARGETS = ['first_reply', 'next_reply', 'periodic_update', 'resolution']

/** The clocks in the targets' order. */
export function orderedClocks(sla: TicketSla | null): SlaClock[] {
  const clocks = Object.values(sla?.clocks ?? {})
  const rank = (target: string) => { const at = SLA_TARGETS.indexOf(target); return at < 0 ? SLA_TARGETS.length : at }
  return clocks.sort((a, b) => rank(a.target) - rank(b.target))
}

/** A running clock past a warning threshold and not breached (as the queue's `warning`). */
export function clockWarning(clock: SlaClock): boolean {
  return clock.state === 'running' && !clock.breached && (clock.warnings ?? []).some((w) => w.passed)
}

export interface Attachment { id: string; entry_id: string | null; filename: string; content_type: string; size: number }
export interface TicketGroup { id: string; name: string; manager_id: string | null; members: { user_id: string }[] }

export interface KbHit { id: string; title: string; status: string; score: number; title_highlight: string; snippet: string }
export interface KbArticle {
  id: string; title: string; body: string; body_format: string; status: string; version: number
  tags: string[]; language: string; helpful_yes: number; helpful_no: number; updated_at: string
  source_ticket_id: string | null
}

/** Which statuses a ticket may move to (services/service_desk/domain/tickets.py). */
export function nextStatuses(status: string): string[] {
  if (status === 'closed') return []
  if (status === 'solved') return ['open', 'closed']
  return TICKET_STATUSES.filter((s) => s !== status && s !== 'new')
}

/** The search's highlights: the service escapes the text and marks matches with <mark>; keep
 * nothing else that looks like a tag, whatever the answer holds. */
export function safeHighlight(html: string): string {
  return html.replace(/<(?!\/?mark>)[^>]*>/gi, '')
}

/** "2 h 5 min" for a number of seconds (its absolute value). */
export function duration(seconds: number, t: (key: string, values?: Record<string, unknown>) => string): string {
  const total = Math.abs(Math.round(seconds / 60))
  const days = Math.floor(total / 1440)
  const hours = Math.floor((total % 1440) / 60)
  const minutes = total % 60
  if (days) return t('desk.sla.days', { d: days, h: hours })
  if (hours) return t('desk.sla.hours', { h: hours, m: minutes })
  return t('desk.sla.minutes', { m: minutes })
}

export function slaTagType(state: string): 'danger' | 'warning' | 'success' | 'info' {
  if (state === 'breached') return 'danger'
  if (state === 'warning') return 'warning'
  if (state === 'ok') return 'success'
  return 'info'
}

export function formatTime(value: string | null | undefined): string {
  return value ? new Date(value).toLocaleString() : '—'
}
