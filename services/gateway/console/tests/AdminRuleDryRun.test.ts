import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import RuleForm from '../src/views/admin/RuleForm.vue'
import RulesTab from '../src/views/admin/RulesTab.vue'
import { eventMatches } from '../src/views/admin/shared'
import { session } from '../src/session'
import type { Locale } from '../src/i18n'
import { click, errorsShown, fakeGateway, formItemText, plugins, settle, typeInto, valueOf, type Call } from './helpers'

const saved = {
  id: 'r1', key: null, name: '官网线索建任务', description: null, enabled: true, version: 2,
  trigger: { type: 'event', event: 'leads.lead_created' }, conditions: 'source == "website"',
  actions: [{ type: 'create_task', title: '跟进 {{ lead.name }}', assignee: 'owner', due_in: '24h' }],
}
const run = (id: string, eventId: string, eventType: string, ruleId = 'r9') => ({
  id, rule_id: ruleId, rule_version: 1, trigger: 'event', event_id: eventId, event_type: eventType,
  record_key: `lead:${eventId}`, matched: true, status: 'completed', reason: null, actions: [],
  started_at: '2026-12-01T08:00:00+00:00',
})
// Recent runs: two lead_created events (one of them run by two rules), a status change.
const recentRuns = [run('x1', 'e1', 'leads.lead_created'), run('x2', 'e1', 'leads.lead_created', 'r8'),
  run('x3', 'e2', 'leads.lead_status_changed'), run('x4', 'e3', 'leads.lead_created')]
// console-sales: the same two lead_created events, from the event log (GET /rule-events)
const recentEvents = ['e1', 'e3'].map((id) => ({ event_id: id, event_name: 'leads.lead_created', event_type: 'lead_created', producer: 'leads',
  occurred_at: '2026-12-01T08:00:00+00:00', received_at: '2026-12-01T08:00:01+00:00', actor: null, correlation_id: 'c', record_key: `lead:${id}` }))
const ownRuns = [{ ...run('own-1', 'e1', 'leads.lead_created', 'r1'), rule_version: 2, status: 'failed', reason: 'leads.assign timed out' }]
const answer = (eventId: string, wouldAct: boolean) => ({
  rule_version: null, would_act: wouldAct,
  event: { event_id: eventId, producer: 'leads', event_type: 'lead_created', occurred_at: '2026-12-01T08:00:00+00:00' },
  trigger: { type: 'event', matches: true },
  conditions: { expression: 'source == "website"', matched: wouldAct },
  actions: [{ type: 'create_task', assignee_id: 'u-zhang', title: `跟进 客户${eventId}`, due_in: '24h' }],
})

beforeEach(() => { session.me = { id: 'u-admin', username: 'admin', display_name: '管理员', role: 'admin', team_id: null } })
afterEach(() => { vi.unstubAllGlobals(); document.body.innerHTML = ''; session.me = null })

function gateway(answerPost: (call: Call) => { status?: number; body?: unknown; headers?: Record<string, string> } | undefined) {
  return fakeGateway((call) => {
    if (call.method === 'GET' && call.url === '/rules') return { body: { items: [saved] } }
    if (call.method === 'GET' && call.url.startsWith('/rule-runs?rule_id=r1')) return { body: { items: ownRuns, next_cursor: null } }
    if (call.method === 'GET' && call.url.startsWith('/rule-runs')) return { body: { items: recentRuns, next_cursor: null } }
    // console-sales: an admin's recent events come from the event log
    if (call.method === 'GET' && call.url.startsWith('/rule-events?')) return { body: { items: recentEvents, next_cursor: null } }
    return answerPost(call)
  })
}
const mountForm = (rule: typeof saved | null, locale: Locale = 'zh-CN') => mount(RuleForm, {
  props: { open: true, rule }, global: { plugins: plugins(locale) }, attachTo: document.body,
})
const posts = (calls: Call[]) => calls.filter((call) => call.method === 'POST')

describe('Rule dry run', () => {
  it('runs an unsaved rule on the recent events of its trigger and shows which would act', async () => {
    const calls = gateway((call) => {
      if (call.url !== '/rules/dry-run') return undefined
      const { event_id: eventId } = call.body as { event_id: string }
      return { body: answer(eventId, eventId === 'e1') }
    })
    const wrapper = mountForm(null)
    await settle()
    typeInto('#rule-name', '试运行的规则')
    typeInto('#rule-conditions', 'source == "website"')
    click('[data-test="dry-recent"]')
    await settle(10)
    expect(calls.find((call) => call.url.startsWith('/rule-events'))!.url).toBe('/rule-events?event=leads.lead_created&limit=10')
    // e1 once (two runs), e3; not the status change
    expect(posts(calls).map((call) => call.body)).toEqual(['e1', 'e3'].map((eventId) => ({
      event_id: eventId,
      definition: {
        name: '试运行的规则', trigger: { type: 'event', event: 'leads.lead_created' }, conditions: 'source == "website"',
        actions: [{ type: 'create_task', title: '跟进 {{ lead.name }}', assignee: 'owner', due_in: '24h' }],
      },
    })))
    const results = document.querySelector('[data-test="dry-results"]')!
    expect(results.textContent).toContain('2 个事件中有 1 个会触发动作')
    const rows = [...results.querySelectorAll('.el-table__body tr')]
    expect(rows).toHaveLength(2)
    expect(rows[0].textContent).toContain('lead:e1')
    expect(rows[0].textContent).toContain('创建任务: "跟进 客户e1" → u-zhang')
    expect(rows[0].querySelector('[data-test="dry-would-act"]')).not.toBeNull()
    expect(rows[1].querySelector('[data-test="dry-would-act"]')).toBeNull()
    expect(posts(calls).some((call) => call.url === '/rules')).toBe(false) // nothing saved
    wrapper.unmount()
  })

  it('shows a 422 of the draft at its field and keeps what was typed', async () => {
    gateway((call) => (call.url === '/rules/dry-run'
      ? { status: 422, body: { status: 422, errors: { conditions: ['invalid syntax at line 1, column 10 (offset 9)'] } } }
      : undefined))
    const wrapper = mountForm(null)
    await settle()
    typeInto('#rule-name', '坏条件')
    typeInto('#rule-conditions', 'score >= and')
    click('[data-test="dry-recent"]')
    await settle(10)
    await errorsShown()
    expect(formItemText('#rule-conditions')).toContain('invalid syntax at line 1, column 10')
    expect(document.querySelector('[data-test="form-error"]')!.textContent).toContain('请修正标出的字段')
    expect(valueOf('#rule-name')).toBe('坏条件')
    expect(valueOf('#rule-conditions')).toBe('score >= and')
    expect(document.querySelector('[data-test="dry-results"]')).toBeNull()
    wrapper.unmount()
  })

  it('runs a saved rule as saved while unchanged, the draft once edited; shows its run history', async () => {
    const calls = gateway((call) => {
      if (call.url === '/rules/r1/dry-run' || call.url === '/rules/dry-run') {
        return { body: answer((call.body as { event_id: string }).event_id, true) }
      }
      return undefined
    })
    const wrapper = mountForm(saved)
    await settle()
    const history = document.querySelector('[data-test="rule-runs"]')!
    expect(calls.some((call) => call.url === '/rule-runs?rule_id=r1&limit=20')).toBe(true)
    expect(history.textContent).toContain('leads.assign timed out')
    expect(history.textContent).toContain('v2')
    click('[data-test="dry-recent"]')
    await settle(10)
    expect(posts(calls).map((call) => [call.url, call.body])).toEqual([
      ['/rules/r1/dry-run', { event_id: 'e1' }], ['/rules/r1/dry-run', { event_id: 'e3' }]])

    typeInto('#rule-conditions', 'source == "referral"')
    click('[data-test="dry-recent"]')
    await settle(10)
    const edited = posts(calls).slice(2)
    expect(edited.map((call) => call.url)).toEqual(['/rules/dry-run', '/rules/dry-run'])
    expect((edited[0].body as { definition: { conditions: string } }).definition.conditions).toBe('source == "referral"')
    wrapper.unmount()
  })

  it('a 503 is an alert with its Retry-After, in English; the sample typed stays', async () => {
    gateway((call) => (call.url === '/rules/r1/dry-run'
      ? { status: 503, body: { status: 503, title: 'Service Unavailable' }, headers: { 'Retry-After': '7' } } : undefined))
    const wrapper = mountForm(saved, 'en')
    await settle()
    const sample = '{"event_type": "leads.lead_created", "data": {"lead": {"id": "l9", "source": "website"}}}'
    typeInto('#dry-sample', sample)
    click('[data-test="dry-sample-run"]')
    await settle(10)
    const alert = document.querySelector('[data-test="dry-run-panel"] [role="alert"]')!
    expect(alert.textContent).toContain('try again in 7 s')
    expect(valueOf('#dry-sample')).toBe(sample)
    expect(valueOf('#rule-conditions')).toBe('source == "website"')
    wrapper.unmount()
  })

  it('says so when no recent event matches the trigger, and skips events past their retention', async () => {
    const calls = gateway((call) => (call.url === '/rules/dry-run'
      ? { status: 404, body: { status: 404, title: 'Not Found' } } : undefined))
    const wrapper = mountForm(null)
    await settle()
    typeInto('#rule-name', '无事件')
    click('[data-test="dry-recent"]')
    await settle(10)
    expect(posts(calls)).toHaveLength(2)
    expect(document.querySelector('[data-test="dry-none"]')!.textContent).toContain('最近没有该触发器的事件')
    expect(document.querySelector('[data-test="dry-run-panel"] [role="alert"]')).toBeNull()
    wrapper.unmount()
  })

  it('dry-runs a saved rule from the list on a sample event; the run history filters by rule', async () => {
    const calls = gateway((call) => (call.url === '/rules/r1/dry-run'
      ? { body: { ...answer('dry-run', false), outside_authority: true } } : undefined))
    const wrapper = mount(RulesTab, { global: { plugins: plugins() }, attachTo: document.body })
    await settle()
    await wrapper.find('[data-test="dry-run"]').trigger('click')
    await settle()
    click('[data-test="dry-sample-run"]')
    await settle(10)
    const dry = posts(calls).find((call) => call.url === '/rules/r1/dry-run')!
    expect(dry.body).toEqual({ sample: { event_type: 'leads.lead_created', data: { lead: { id: 'sample', source: 'website', score: 70 } } } })
    expect(document.querySelector('[data-test="dry-table"]')!.textContent).toContain('超出权限')
    expect(document.querySelector('[data-test="dry-summary"]')!.textContent).toContain('1 个事件中有 0 个会触发动作')
    const tab = wrapper.vm as unknown as { runsOf: string; load: () => Promise<void> }
    tab.runsOf = 'r1'
    await tab.load()
    await settle()
    expect(calls.some((call) => call.url === '/rule-runs?limit=30&rule_id=r1')).toBe(true)
    wrapper.unmount()
  })

  it("a saved rule's dry run from the list shows a 422 in its own alert", async () => {
    gateway((call) => (call.url === '/rules/r1/dry-run'
      ? { status: 422, body: { status: 422, errors: { conditions: ['unknown name: stage'] } } }
      : undefined))
    const wrapper = mount(RulesTab, { global: { plugins: plugins() }, attachTo: document.body })
    await settle()
    await wrapper.find('[data-test="dry-run"]').trigger('click')
    await settle()
    typeInto('#dry-sample', '{"event_type": "lead_created"}')
    click('[data-test="dry-sample-run"]')
    await settle(10)
    const alert = document.querySelector('[data-test="dry-run-panel"] .error-alert')!.textContent!
    expect(alert).toContain('请修正标出的字段')
    expect(alert).toContain('conditions: unknown name: stage') // no form here to show it at a field
    expect(valueOf('#dry-sample')).toBe('{"event_type": "lead_created"}')
    wrapper.unmount()
  })

  it('matches trigger event patterns as the rules service does', () => {
    expect(eventMatches(['leads.*'], 'leads.lead_created')).toBe(true)
    expect(eventMatches(['leads.lead_created'], 'leads.lead_created_x')).toBe(false)
    expect(eventMatches(['*'], 'sales.contact_created')).toBe(true)
    expect(eventMatches(['sales.*'], 'leads.lead_created')).toBe(false)
  })
})

// picking the recent events to dry-run against
describe('Rule dry run: picking recent events', () => {
  it('lists the recent events of every trigger pattern; only the picked ones run again', async () => {
    const calls = gateway((call) => (call.url === '/rules/r1/dry-run'
      ? { body: answer((call.body as { event_id: string }).event_id, true) } : undefined))
    const wrapper = mountForm({ ...saved, trigger: { type: 'delay', events: ['leads.lead_created', 'leads.lead_status_*'], delay: '72h' } as never })
    await settle()
    click('[data-test="dry-recent"]')
    await settle(10)
    expect(calls.find((call) => call.url.startsWith('/rule-events'))!.url)
      .toBe('/rule-events?event=leads.lead_created&event=leads.lead_status_*&limit=10')
    const picker = document.querySelector('[data-test="dry-candidates"]')!
    expect(picker.textContent).toContain('lead:e3')
    expect(posts(calls).map((call) => (call.body as { event_id: string }).event_id)).toEqual(['e1', 'e3'])
    ;(document.querySelector('[data-test="dry-pick-e1"] input') as HTMLInputElement).click()
    await settle()
    expect(document.querySelector('[data-test="dry-picked"]')!.textContent).toContain('用选中的 1 个事件试运行')
    click('[data-test="dry-picked"]')
    await settle(10)
    expect(posts(calls).slice(2).map((call) => (call.body as { event_id: string }).event_id)).toEqual(['e3'])
    expect(calls.filter((call) => call.url.startsWith('/rule-events'))).toHaveLength(1) // no new look-up
    expect(document.querySelector('[data-test="dry-summary"]')!.textContent).toContain('1 个事件中有 1 个会触发动作')
    wrapper.unmount()
  })

  it('a manager, who may not read the event log, gets the events of the recent runs', async () => {
    session.me = { id: 'u-mgr', username: 'manager', display_name: '王经理', role: 'manager', team_id: 't1' }
    const calls = gateway((call) => (call.url === '/rules/dry-run'
      ? { body: answer((call.body as { event_id: string }).event_id, false) } : undefined))
    const wrapper = mountForm(null)
    await settle()
    typeInto('#rule-name', '经理的规则')
    click('[data-test="dry-recent"]')
    await settle(10)
    expect(calls.some((call) => call.url.startsWith('/rule-events'))).toBe(false)
    expect(calls.some((call) => call.url === '/rule-runs?limit=100')).toBe(true)
    expect(posts(calls).map((call) => (call.body as { event_id: string }).event_id)).toEqual(['e1', 'e3'])
    wrapper.unmount()
  })
})
