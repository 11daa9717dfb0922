import { describe, expect, it } from 'vitest'
import { ApiError } from '../src/api'
import { describeCriterion, describeError, fieldErrors } from '../src/errors'
import { makeI18n } from '../src/i18n'

const zh = makeI18n('zh-CN').global.t as (key: string, values?: Record<string, unknown>) => string
const en = makeI18n('en').global.t as (key: string, values?: Record<string, unknown>) => string

describe('describeError', () => {
  it('says when to retry a 503, in both languages', () => {
    const error = new ApiError({ status: 503, title: 'Service unavailable' }, 7)
    expect(describeError(error, zh)).toBe('服务暂时不可用，请 7 秒后重试。')
    expect(describeError(error, en)).toBe('The service is unavailable; try again in 7 s.')
  })

  it('names the duplicate reasons of a 409', () => {
    const error = new ApiError({ status: 409, matches: [{ lead_id: 'a', reason: 'phone', score: 100, exact: true }] })
    expect(describeError(error, zh)).toContain('电话')
    expect(describeError(error, en)).toBe('A lead with the same phone exists.')
  })

  it('maps 403, 404 and an unreachable gateway', () => {
    expect(describeError(new ApiError({ status: 403 }), en)).toBe('You are not allowed to do this.')
    expect(describeError(new ApiError({ status: 404 }), zh)).toContain('不在您的可见范围')
    expect(describeError(new ApiError({ status: 0 }), en)).toContain('cannot be reached')
  })
})

describe('fieldErrors', () => {
  it('translates the API messages per field and keeps domain messages', () => {
    const error = new ApiError({
      status: 422,
      errors: { name: ['Length must be between 1 and 200.'], email: ['Not a valid email address.'],
        key_points: { pain_points: ['Missing data for required field.'] }, credit_code: ['check digit is wrong'] },
    })
    expect(fieldErrors(error, zh)).toEqual({
      name: '长度应在 1 到 200 之间', email: '邮箱格式不正确', 'key_points.pain_points': '必填',
      credit_code: 'check digit is wrong',
    })
  })

  it('is empty for anything but a 422', () => {
    expect(fieldErrors(new ApiError({ status: 409 }), en)).toEqual({})
  })
})

describe('describeCriterion', () => {
  it('says which field and which follow-up are missing', () => {
    expect(describeCriterion({ type: 'field', field: 'amount' }, zh)).toBe('必须填写「金额」')
    expect(describeCriterion({ type: 'activity', kind: 'meeting', tag: 'needs_analysis', min_count: 1, found: 0 }, en))
      .toBe('1 meeting tagged "needs_analysis" needed (found 0)')
  })
})
