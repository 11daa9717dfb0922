import { describe, expect, it } from 'vitest'
import zhCN from '../src/locales/zh-CN'
import en from '../src/locales/en'

/** Every key path of a messages object (`admin.dry.recent`, ...). */
function keys(messages: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(messages).flatMap(([key, value]) => (value && typeof value === 'object'
    ? keys(value as Record<string, unknown>, `${prefix}${key}.`) : [`${prefix}${key}`])).sort()
}

describe('locales', () => {
  it('Chinese and English have the same keys, none of them empty', () => {
    expect(keys(en)).toEqual(keys(zhCN))
    const empty = (messages: Record<string, unknown>) => keys(messages).filter((path) =>
      path.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], messages) === '')
    expect(empty(zhCN)).toEqual([])
    expect(empty(en)).toEqual([])
  })
})
