import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import RulesTab from '../src/views/admin/RulesTab.vue'
import RuleForm from '../src/views/admin/RuleForm.vue'
import { session } from '../src/session'
import { click, errorsShown, fakeGateway, formItemText, plugins, settle, submitForm, typeInto, valueOf, type Call } from './helpers'

const shipped = {
  id: 'r1', key: 'lead-untreated-72h', name: '72 小时未处理', description: null, enabled: true, version: 3,
  trigger: { type: 'delay', events: ['leads.lead_created'], delay: '72h', record: 'lead' },
  conditions: 'status == "new"', actions: [{ type: 'notify', to: ['owner'], channels: ['in_app'], title: '请处理' }],
}
const run = { id: 'run-1', rule_id: 'r1', rule_version: 3, event_type: 'leads.lead_created', record_key: 'lead:l1',
  matched: true, status: 'completed', actions: [], started_at: '2026-12-01T08:00:00+00:00' }

beforeEach(() => { session.me = { id: 'u-admin', username: 'admin', display_name: '管理员', role: 'admin', team_id: null } })
afterEach(() => { vi.unstubAllGlobals(); document.body.innerHTML = ''; session.me = null })

function gateway(answer: (call: Call) => { status?: number; body?: unknown } | undefined, rules = [shipped]) {
  return fakeGateway((call) => {
    if (call.method === 'GET' && call.url === '/rules') return { body: { items: rules } }
    if (call.method === 'GET' && call.url.startsWith('/rule-runs')) return { body: { items: [run], next_cursor: null } }
    return answer(call)
  })
}
const mountTab = () => mount(RulesTab, { global: { plugins: plugins() }, attachTo: document.body })
const badCondition = { status: 422, body: { status: 422, errors: { conditions: ['invalid syntax at line 1, column 22 (offset 21)'] } } }

describe('Rules tab', () => {
  it('creates a rule from the form; a bad condition is shown at the conditions, and the fix saves', async () => {
    const created = { ...shipped, id: 'r2', key: null, name: '官网高分线索', version: 1, trigger: { type: 'event', event: 'leads.lead_created' } }
    const calls = gateway((call) => {
      if (call.method !== 'POST' || call.url !== '/rules') return undefined
      return String((call.body as { conditions: string }).conditions).endsWith('and') ? badCondition : { status: 201, body: created }
    })
    const wrapper = mountTab()
    await settle()
    expect(wrapper.find('[data-test="rules-table"]').text()).toContain('72 小时未处理')
    expect(wrapper.find('[data-test="runs-table"]').text()).toContain('72 小时未处理 v3')
    await wrapper.find('[data-test="new-rule"]').trigger('click')
    await settle()
    typeInto('#rule-name', '官网高分线索')
    typeInto('#rule-conditions', 'source == "website" and')
    submitForm('[data-test="rule-form"]')
    await settle()
    await errorsShown()
    expect(formItemText('#rule-conditions')).toContain('invalid syntax at line 1, column 22')
    expect(valueOf('#rule-name')).toBe('官网高分线索')
    expect(valueOf('#rule-conditions')).toBe('source == "website" and')

    typeInto('#rule-conditions', 'source == "website" and score >= 80')
    submitForm('[data-test="rule-form"]')
    await settle()
    const post = calls.filter((call) => call.method === 'POST').at(-1)!
    expect(post.body).toEqual({
      name: '官网高分线索', description: null, enabled: true,
      trigger: { type: 'event', event: 'leads.lead_created' },
      conditions: 'source == "website" and score >= 80',
      actions: [{ type: 'create_task', title: '跟进 {{ lead.name }}', assignee: 'owner', due_in: '24h' }],
    })
    expect(calls.filter((call) => call.url === '/rules' && call.method === 'GET')).toHaveLength(2) // reloaded
    wrapper.unmount()
  })

  it('refuses an action whose JSON does not parse, without a request, and shows an action 422 at that action', async () => {
    const calls = gateway((call) => (call.method === 'POST'
      ? { status: 422, body: { status: 422, errors: { 'actions.1.title': ['is required'] } } } : undefined))
    const wrapper = mountTab()
    await settle()
    await wrapper.find('[data-test="new-rule"]').trigger('click')
    await settle()
    typeInto('#rule-name', '两个动作')
    click('[data-test="add-action"]')
    await settle()
    typeInto('[data-test="rule-action-1"] textarea', '{"to": ["owner"],')
    submitForm('[data-test="rule-form"]')
    await settle()
    await errorsShown()
    expect(calls.filter((call) => call.method === 'POST')).toHaveLength(0)
    expect(document.querySelector('[data-test="rule-action-1"]')!.textContent).toContain('JSON 格式不正确')
    expect(valueOf('[data-test="rule-action-1"] textarea')).toBe('{"to": ["owner"],')

    typeInto('[data-test="rule-action-1"] textarea', '{"to": ["owner"], "channels": ["in_app"]}')
    submitForm('[data-test="rule-form"]')
    await settle()
    await errorsShown()
    expect(calls.filter((call) => call.method === 'POST')).toHaveLength(1)
    expect(document.querySelector('[data-test="rule-action-1"]')!.textContent).toContain('title: is required')
    expect(document.querySelector('[data-test="rule-action-0"]')!.textContent).not.toContain('is required')
    wrapper.unmount()
  })

  it('edits a rule: its trigger settings, actions and key travel with the new version (PUT)', async () => {
    const calls = gateway((call) => (call.method === 'PUT' ? { body: { ...shipped, version: 4 } } : undefined))
    const wrapper = mountTab()
    await settle()
    await wrapper.find('[data-test="edit-rule"]').trigger('click')
    await settle()
    expect(valueOf('#rule-name')).toBe('72 小时未处理')
    expect(JSON.parse(valueOf('#rule-trigger-settings'))).toEqual({ events: ['leads.lead_created'], delay: '72h', record: 'lead' })
    expect(document.querySelector('#rule-event')).toBeNull() // a delay trigger has no single event
    typeInto('#rule-trigger-settings', '{"events": ["leads.lead_created"], "delay": "48h", "record": "lead"}')
    wrapper.findComponent(RuleForm).vm.form.enabled = false
    submitForm('[data-test="rule-form"]')
    await settle()
    const put = calls.find((call) => call.method === 'PUT')!
    expect(put.url).toBe('/rules/r1')
    expect(put.body).toEqual({
      name: '72 小时未处理', description: null, enabled: false, key: 'lead-untreated-72h',
      trigger: { type: 'delay', events: ['leads.lead_created'], delay: '48h', record: 'lead' },
      conditions: 'status == "new"', actions: [{ type: 'notify', to: ['owner'], channels: ['in_app'], title: '请处理' }],
    })
    wrapper.unmount()
  })

  it('keeps the dry run of a saved rule and the enable switch', async () => {
    const calls = gateway((call) => {
      if (call.url === '/rules/r1/dry-run') return { body: { would_act: true, event: { producer: 'leads', event_type: 'lead_created' }, trigger: { matches: true }, conditions: { matched: true }, actions: [] } }
      if (call.url === '/rules/r1/disable') return { body: { ...shipped, enabled: false } }
      return undefined
    })
    const wrapper = mountTab()
    await settle()
    await wrapper.find('[data-test="dry-run"]').trigger('click')
    await settle()
    click('[data-test="dry-sample-run"]')
    await settle()
    const dry = calls.find((call) => call.url === '/rules/r1/dry-run')!
    expect(dry.body).toEqual({ sample: { event_type: 'leads.lead_created', data: { lead: { id: 'sample', source: 'website', score: 70 } } } })
    expect(document.querySelector('[data-test="dry-would-act"]')!.textContent).toContain('是')
    await wrapper.find('[data-test="rules-table"] .el-switch').trigger('click')
    await settle()
    expect(calls.some((call) => call.method === 'POST' && call.url === '/rules/r1/disable')).toBe(true)
    wrapper.unmount()
  })

  it('marks a changed shipped rule whose new shipped version waits, and an admin adopts it after confirming', async () => {
    const waiting = { ...shipped, shipped_update_available: true }
    let adopted = false
    const calls = fakeGateway((call) => {
      if (call.method === 'GET' && call.url === '/rules') return { body: { items: [adopted ? { ...shipped, version: 4, shipped_update_available: false } : waiting] } }
      if (call.method === 'GET' && call.url.startsWith('/rule-runs')) return { body: { items: [], next_cursor: null } }
      if (call.method === 'POST' && call.url === '/rules/r1/adopt-shipped') { adopted = true; return { body: { ...shipped, version: 4, shipped_update_available: false } } }
      return undefined
    })
    const wrapper = mountTab()
    await settle()
    expect(wrapper.find('[data-test="shipped-update"]').text()).toBe('有新的内置版本')
    await wrapper.find('[data-test="adopt-shipped"]').trigger('click')
    await settle()
    expect(document.body.querySelector('.el-message-box')!.textContent).toContain('72 小时未处理')
    expect(calls.some((call) => call.url === '/rules/r1/adopt-shipped')).toBe(false) // asked first
    ;(document.body.querySelector('.el-message-box .el-button--primary') as HTMLButtonElement).click()
    await settle(10)
    expect(calls.filter((call) => call.method === 'POST' && call.url === '/rules/r1/adopt-shipped')).toHaveLength(1)
    expect(wrapper.find('[data-test="shipped-update"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="adopt-shipped"]').exists()).toBe(false)
    wrapper.unmount()
  })

  it('offers a manager no adopt button (adopting is for admins)', async () => {
    session.me = { id: 'u-mgr', username: 'lina', display_name: '李娜', role: 'manager', team_id: 't1' }
    const flagged = { ...shipped, shipped_update_available: true }
    gateway(() => undefined, [flagged])
    const wrapper = mountTab()
    await settle()
    expect(wrapper.find('[data-test="rules-table"]').text()).toContain('72 小时未处理')
    expect(wrapper.find('[data-test="adopt-shipped"]').exists()).toBe(false)
    wrapper.unmount()
  })
})
