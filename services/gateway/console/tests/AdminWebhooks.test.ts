import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import WebhooksTab from '../src/views/admin/WebhooksTab.vue'
import { session } from '../src/session'
import type { Locale } from '../src/i18n'
import { click, errorsShown, fakeGateway, formItemText, plugins, settle, submitForm, typeInto, valueOf, type Call } from './helpers'

const hook = {
  id: 'w1', url: 'https://erp.example.com/hooks/crm', event_types: ['leads.lead_created'], description: 'ERP',
  active: true, disabled_reason: null, created_at: '2026-12-01T08:00:00+00:00', created_by: 'u-admin', acts_for: { kind: 'organisation' },
}
const delivery = (id: string, status: string, extra: Record<string, unknown> = {}) => ({
  id, subscription_id: 'w1', event_id: `ev-${id}`, event_type: 'leads.lead_created', status, attempts: 3,
  next_attempt_at: null, last_status_code: 500, last_error: 'HTTP 500', created_at: '2026-12-02T08:00:00+00:00',
  delivered_at: null, attempt_log: [{ at: '2026-12-02T08:00:01+00:00', status_code: 500 }], ...extra,
})

beforeEach(() => { session.me = { id: 'u-admin', username: 'admin', display_name: '管理员', role: 'admin', team_id: null } })
afterEach(() => { vi.unstubAllGlobals(); document.body.innerHTML = ''; session.me = null })

function gateway(answer: (call: Call) => { status?: number; body?: unknown; headers?: Record<string, string> } | undefined,
                 hooks: unknown[] = [hook]) {
  return fakeGateway((call) => {
    if (call.method === 'GET' && call.url === '/webhooks') return { body: { items: hooks } }
    return answer(call)
  })
}
const mountTab = (locale: Locale = 'zh-CN') => mount(WebhooksTab, { global: { plugins: plugins(locale) }, attachTo: document.body })
const calledTimes = (calls: Call[], method: string, url: string) => calls.filter((c) => c.method === method && c.url === url).length

describe('Webhooks tab', () => {
  it('creates a subscription: a bad URL at its field, then the secret shown once', async () => {
    const hooks: unknown[] = []
    const calls = gateway((call) => {
      if (call.method !== 'POST' || call.url !== '/webhooks') return undefined
      const { url } = call.body as { url: string }
      return url.startsWith('http') ? { status: 201, body: { ...hook, url, secret: 'whsec_abc123' } }
        : { status: 422, body: { status: 422, errors: { url: ['Not a valid URL.'] } } }
    }, hooks)
    const wrapper = mountTab()
    await settle()
    typeInto('#hook-url', 'erp.example.com/hooks')
    typeInto('#hook-description', '同步到 ERP')
    submitForm('[data-test="webhook-form"]')
    await settle()
    await errorsShown()
    expect(formItemText('#hook-url')).toContain('Not a valid URL.')
    expect(valueOf('#hook-url')).toBe('erp.example.com/hooks')
    expect(valueOf('#hook-description')).toBe('同步到 ERP')
    expect(document.querySelector('[data-test="webhook-secret"]')).toBeNull()

    typeInto('#hook-url', 'https://erp.example.com/hooks')
    hooks.push(hook)
    submitForm('[data-test="webhook-form"]')
    await settle()
    const post = calls.filter((call) => call.method === 'POST').at(-1)!
    expect(post.body).toEqual({ url: 'https://erp.example.com/hooks', event_types: ['leads.lead_created'], description: '同步到 ERP' })
    expect(document.querySelector('[data-test="webhook-secret"]')!.textContent).toContain('签名密钥（只显示一次）： whsec_abc123')
    expect(calledTimes(calls, 'GET', '/webhooks')).toBe(2)
    wrapper.unmount()
    // another visit: the list has no secret and the page shows none
    const again = mountTab()
    await settle()
    expect(document.querySelector('[data-test="webhook-secret"]')).toBeNull()
    again.unmount()
  })

  it('edits a subscription (PATCH); a bad event type is shown at the event types and what was typed stays', async () => {
    const calls = gateway((call) => {
      if (call.method !== 'PATCH') return undefined
      const types = (call.body as { event_types: string[] }).event_types
      return types.includes('Leads') ? { status: 422, body: { status: 422, errors: { event_types: { 1: ["'<service>.<event_type>', '*' allowed"] } } } }
        : { body: { ...hook, ...(call.body as object) } }
    })
    const wrapper = mountTab()
    await settle()
    await wrapper.find('[data-test="edit-webhook"]').trigger('click')
    await settle()
    expect(valueOf('#hook-edit-url')).toBe('https://erp.example.com/hooks/crm')
    typeInto('#hook-edit-events', 'leads.lead_created, Leads')
    submitForm('[data-test="webhook-edit-form"]')
    await settle()
    await errorsShown()
    expect(formItemText('#hook-edit-events')).toContain("1: '<service>.<event_type>', '*' allowed")
    expect(valueOf('#hook-edit-events')).toBe('leads.lead_created, Leads')
    typeInto('#hook-edit-events', 'leads.lead_created, sales.*')
    typeInto('#hook-edit-description', '')
    submitForm('[data-test="webhook-edit-form"]')
    await settle()
    const patch = calls.filter((call) => call.method === 'PATCH').at(-1)!
    expect(patch.url).toBe('/webhooks/w1')
    expect(patch.body).toEqual({ url: 'https://erp.example.com/hooks/crm', event_types: ['leads.lead_created', 'sales.*'], description: null })
    expect(calledTimes(calls, 'GET', '/webhooks')).toBe(2)
    wrapper.unmount()
  })

  it('shows the deliveries of a subscription, failed only on request, and replays one', async () => {
    const calls = gateway((call) => {
      if (call.url.startsWith('/webhooks/w1/deliveries')) {
        const failedOnly = call.url.includes('status=failed')
        const items = failedOnly ? [delivery('d2', 'failed')]
          : [delivery('d1', 'delivered', { attempts: 1, last_status_code: 200, last_error: null, delivered_at: '2026-12-02T08:00:02+00:00' }), delivery('d2', 'failed')]
        return { body: { items, next_cursor: null } }
      }
      if (call.url === '/webhook-deliveries/d2/replay') {
        return { body: delivery('d2', 'delivered', { attempts: 4, last_status_code: 204, last_error: null, delivered_at: '2026-12-03T08:00:00+00:00' }) }
      }
      return undefined
    })
    const wrapper = mountTab()
    await settle()
    await wrapper.find('[data-test="webhook-deliveries"]').trigger('click')
    await settle()
    expect(calls.some((call) => call.url === '/webhooks/w1/deliveries?limit=20')).toBe(true)
    const rows = () => [...document.querySelectorAll('[data-test="deliveries-table"] .el-table__body tr')]
    expect(rows()).toHaveLength(2)
    expect(rows()[0].textContent).toContain('已送达')
    expect(rows()[0].textContent).toContain('200')
    expect(rows()[1].textContent).toContain('失败')
    expect(rows()[1].textContent).toContain('HTTP 500')
    expect(rows()[1].textContent).toContain('3')

    click('[data-test="deliveries-failed"] input')
    await settle()
    expect(calls.some((call) => call.url === '/webhooks/w1/deliveries?limit=20&status=failed')).toBe(true)
    expect(rows()).toHaveLength(1)
    click('[data-test="replay"]')
    await settle()
    expect(calls.filter((call) => call.method === 'POST').map((call) => call.url)).toEqual(['/webhook-deliveries/d2/replay'])
    expect(rows()[0].textContent).toContain('已送达')
    expect(rows()[0].textContent).toContain('204')
    wrapper.unmount()
  })

  it('a replay refused (409, 503 with Retry-After) is an alert in the deliveries, in either language', async () => {
    let answer: { status: number; body: unknown; headers?: Record<string, string> } = {
      status: 409, body: { status: 409, detail: 'the subscription is paused' } }
    gateway((call) => {
      if (call.url.startsWith('/webhooks/w1/deliveries')) return { body: { items: [delivery('d2', 'failed')], next_cursor: null } }
      if (call.url === '/webhook-deliveries/d2/replay') return answer
      return undefined
    })
    const wrapper = mountTab('en')
    await settle()
    await wrapper.find('[data-test="webhook-deliveries"]').trigger('click')
    await settle()
    click('[data-test="replay"]')
    await settle()
    const alert = () => document.querySelector('.el-dialog [role="alert"]')?.textContent ?? ''
    expect(alert()).toContain('Conflict: the subscription is paused')
    answer = { status: 503, body: { status: 503, title: 'Service Unavailable' }, headers: { 'Retry-After': '12' } }
    click('[data-test="replay"]')
    await settle()
    expect(alert()).toContain('try again in 12 s')
    expect(document.querySelectorAll('[data-test="deliveries-table"] .el-table__body tr')).toHaveLength(1) // the list stays
    wrapper.unmount()
  })
})
