import { ApiError, type MissingCriterion } from './api'

type Translate = (key: string, values?: Record<string, unknown>) => string

/** One sentence for the user, in their language, for any failed call. */
export function describeError(error: unknown, t: Translate): string {
  if (!(error instanceof ApiError)) return t('errors.unknown', { status: '?', detail: String(error) })
  const { status, problem } = error
  switch (status) {
    case 0: return t('errors.network')
    case 401: return t('errors.unauthenticated')
    case 403: return t('errors.forbidden')
    case 404: return t('errors.notFound')
    case 409:
      if (problem.matches?.length) {
        const reasons = [...new Set(problem.matches.map((m) => t(`lead.reasons.${m.reason}`)))]
        return t('errors.duplicate', { reasons: reasons.join(', ') })
      }
      return t('errors.conflict', { detail: problem.detail ?? '' })
    case 412: return t('errors.precondition')
    case 422: return t('errors.validation')
    case 429: return t('errors.rateLimited', { seconds: error.retryAfter ?? 1 })
    case 503:
      return error.retryAfter !== null ? t('errors.unavailable', { seconds: error.retryAfter })
        : t('errors.unavailableNoRetry')
    default:
      if (status >= 500) return t('errors.server', { status })
      return t('errors.unknown', { status, detail: problem.detail ?? '' })
  }
}

const FIELD_MESSAGES: [RegExp, string, (match: RegExpMatchArray) => Record<string, unknown>][] = [
  [/^Missing data for required field\.?$/, 'errors.field.required', () => ({})],
  [/^Field may not be null\.?$/, 'errors.field.required', () => ({})],
  [/^Not a valid email address\.?$/, 'errors.field.email', () => ({})],
  [/^Unknown field\.?$/, 'errors.field.unknown', () => ({})],
  [/^Length must be between (\d+) and (\d+)\.?$/, 'errors.field.length', (m) => ({ min: m[1], max: m[2] })],
  [/^Not a valid (date|datetime)\.?$/, 'errors.field.date', () => ({})],
  [/^Not a valid (number|integer|decimal)\.?$/i, 'errors.field.number', () => ({})],
  [/^Must be one of/, 'errors.field.choice', () => ({})],
  [/^Already exists\.?$/, 'errors.field.exists', () => ({})],
  // the contracts service's payment plan, receipts and invoices
  [/^the instalments total (\S+) exceeds the contract amount (\S+)$/, 'errors.field.planOverAmount', (m) => ({ total: m[1], amount: m[2] })],
  [/^give exactly one of amount or percentage$/, 'errors.field.amountOrPercent', () => ({})],
  [/^must be positive$/, 'errors.field.positive', () => ({})],
  [/^must be in \(0, 100\]$/, 'errors.field.percentRange', () => ({})],
  [/^no such (receipt of the contract|instalment of the contract|instalment)$/, 'errors.field.noSuch', () => ({})],
  [/^the instalment is void$/, 'errors.field.instalmentVoid', () => ({})],
  [/^a unified social credit code has 18 characters$/, 'errors.field.taxLength', () => ({})],
  [/^characters not allowed in a unified social credit code: (.+)$/, 'errors.field.taxChars', (m) => ({ chars: m[1] })],
  [/^the check character does not match/, 'errors.field.taxCheck', () => ({})],
  [/^a special VAT invoice .* needs the buyer's tax number$/, 'errors.field.taxRequired', () => ({})],
  [/^the (receipt|instalment)'s invoices would total (\S+), over its amount (\S+)$/, 'errors.field.invoiceOverTarget', (m) => ({ total: m[2], amount: m[3] })],
  [/^the contract's invoices would total (\S+), over the contract amount (\S+)$/, 'errors.field.invoiceOverContract', (m) => ({ total: m[1], amount: m[2] })],
]

export function translateFieldMessage(message: string, t: Translate): string {
  for (const [pattern, key, values] of FIELD_MESSAGES) {
    const match = message.match(pattern)
    if (match) return t(key, values(match))
  }
  return message // a domain message (e.g. a credit code's check digit): shown as the service wrote it
}

/** field -> one translated line, for `el-form-item :error`. */
export function fieldErrors(error: unknown, t: Translate): Record<string, string> {
  // 422, and a 409 that names its field (a username that is taken)
  if (!(error instanceof ApiError) || !(error.status === 422 || (error.status === 409 && error.problem.errors))) return {}
  const out: Record<string, string> = {}
  for (const [field, messages] of Object.entries(error.fieldErrors)) {
    out[field] = messages.map((m) => translateFieldMessage(m, t)).join('; ')
  }
  return out
}

export function describeCriterion(item: MissingCriterion, t: Translate): string {
  if (item.type === 'field' && item.field) {
    const key = `fields.${item.field}`
    const label = t(key)
    return t('board.criterionField', { field: label === key ? item.field : label })
  }
  if (item.type === 'activity') {
    return t('board.criterionActivity', {
      count: item.min_count ?? 1, kind: t(`followup.kinds.${item.kind}`), tag: item.tag ?? '',
      found: item.found ?? 0,
    })
  }
  return item.message ?? item.type
}
