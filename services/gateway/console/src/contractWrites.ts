// What a failed write of the contract page shows: field messages at their fields (422; a 409
// that names its field, as an invoice number already used), and one sentence for the rest (the
// approval lock's 409 says so in the user's words).
import { ref } from 'vue'
import { ApiError } from './api'
import { describeError, fieldErrors } from './errors'

type Translate = (key: string, values?: Record<string, unknown>) => string

export interface WriteFailure { fields: Record<string, string>; message: string; locked: boolean }

export function writeFailure(failure: unknown, t: Translate): WriteFailure {
  const fields = fieldErrors(failure, t)
  let locked = false
  let message = describeError(failure, t)
  if (failure instanceof ApiError && failure.status === 409) {
    const field = failure.problem.field
    if (typeof field === 'string' && !fields[field]) fields[field] = t('errors.field.taken')
    if (failure.problem.reason === 'in_approval') {
      locked = true
      message = t('contractPage.lockedNow')
    }
  }
  return { fields, message, locked }
}

/** A contract page form's submission: `send(write)` clears the last errors, runs the write and
 * answers its result; on a failure it answers undefined with the field messages, the sentence
 * and the lock (`onLocked`) where the form shows them, and what was typed stays. */
export function useWrite(t: Translate, onLocked: () => void) {
  const errors = ref<Record<string, string>>({})
  const message = ref('')
  const busy = ref(false)
  async function send<T>(write: () => Promise<T>): Promise<T | undefined> {
    busy.value = true
    errors.value = {}
    message.value = ''
    try {
      return await write()
    } catch (failure) {
      const outcome = writeFailure(failure, t)
      errors.value = outcome.fields
      message.value = outcome.message
      if (outcome.locked) onLocked()
      return undefined
    } finally {
      busy.value = false
    }
  }
  return { errors, message, busy, send }
}

/** Today in the user's time zone, as YYYY-MM-DD. */
export function today(): string {
  const now = new Date()
  const pad = (n: number) => String(n).padStart(2, '0')
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`
}
