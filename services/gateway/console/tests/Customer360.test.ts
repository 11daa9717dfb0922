import { afterEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import Customer360 from '../src/views/Customer360.vue'
import { refreshInbox, unread } from '../src/inbox'
import { fakeGateway, plugins, settle } from './helpers'

afterEach(() => { vi.unstubAllGlobals(); document.body.innerHTML = '' })

const view = {
  customer: { id: 'c1', name: '苏州精工机械有限公司', tier: 'A', region: '华东', industry: '制造业', lifecycle_stage: 'prospect',
    contacts: [{ id: 'k1', name: '李雷', title: '采购总监', role: 'decision_maker', phone: '+8613800138000', email: null }],
    insights: { health: { score: 35, band: 'at_risk' } } },
  owner: { display_name: '张伟' },
  recent_followups: [{ id: 'f1', kind: 'meeting', subject: '需求调研会', notes: null, occurred_at: '2026-12-01T08:00:00+00:00',
    key_points: { pain_points: ['排产靠人工'] }, next_followup_at: null, owner_id: 'u1', tags: ['needs_analysis'] }],
  open_opportunities: [{ id: 'o1', name: 'MES 项目', amount: '380000.00', currency: 'CNY', status: 'open', stage: { name: '方案报价' }, stage_id: 's3', expected_close_date: null }],
  closed_opportunities: [],
  tasks: [{ id: 't1', title: '立即致电：李雷', due_at: null, overdue: true, status: 'open' }],
  partial: ['tasks'],
}

function mount360() {
  return mount(Customer360, { props: { id: 'c1' }, global: { plugins: plugins() }, attachTo: document.body })
}

describe('Customer360', () => {
  it('shows contacts with their roles, the timeline, opportunities, tasks and what is missing', async () => {
    fakeGateway((call) => (call.url === '/customers/c1/360' ? { body: view } : undefined))
    const wrapper = mount360()
    await settle()
    const text = wrapper.text()
    expect(text).toContain('苏州精工机械有限公司')
    expect(text).toContain('决策者')
    expect(wrapper.find('[data-test="timeline"]').text()).toContain('需求调研会')
    expect(text).toContain('排产靠人工')
    expect(wrapper.find('[data-test="customer-opportunities"]').text()).toContain('CNY 380000.00')
    expect(text).toContain('已逾期')
    expect(text).toContain('部分数据暂不可用：tasks')
    wrapper.unmount()
  })

  it('shows the receivables of all contracts and the tickets with their SLA state, each linked to its desk page', async () => {
    const withDesk = { ...view, partial: [],
      receivables: { received: '1000.00', outstanding: '2500.00', overdue: '500.00' },
      tickets: { customer_id: 'c1', open_count: 1, total: 2, recent: [
        { id: 'tk1', number: 'T-000007', subject: '发票抬头错误', status: 'open', priority: 'urgent', assignee_id: null, group_id: null,
          created_at: '2026-12-02T08:00:00+00:00', updated_at: '2026-12-02T08:00:00+00:00', sla_state: 'breached', sla: {} },
        { id: 'tk2', number: 'T-000003', subject: '退款进度', status: 'solved', priority: 'normal', assignee_id: 'u1', group_id: null,
          created_at: '2026-11-30T08:00:00+00:00', updated_at: '2026-12-01T08:00:00+00:00', sla_state: 'met', sla: {} }] } }
    fakeGateway((call) => (call.url === '/customers/c1/360' ? { body: withDesk } : undefined))
    const wrapper = mount(Customer360, { props: { id: 'c1' }, attachTo: document.body, global: { plugins: plugins(),
      stubs: { RouterLink: { props: ['to'], template: '<a :data-to="JSON.stringify(to)"><slot /></a>' } } } })
    await settle()
    const owed = wrapper.find('[data-test="customer-receivables"]').text()
    expect(owed).toContain('2500.00')
    expect(owed).toContain('500.00')
    expect(wrapper.find('[data-test="customer-tickets-count"]').text()).toBe('未解决 1 / 共 2')
    const table = wrapper.find('[data-test="customer-tickets-table"]')
    expect(table.text()).toContain('发票抬头错误')
    expect(table.text()).toContain('紧急')
    const states = wrapper.findAll('[data-test="ticket-sla-state"]').map((tag) => tag.text())
    expect(states).toEqual(['已超时', '已达成'])
    const links = wrapper.findAll('[data-test="open-ticket"]').map((link) => JSON.parse(link.attributes('data-to')!))
    expect(links).toEqual([{ name: 'desk-ticket', params: { id: 'tk1' } }, { name: 'desk-ticket', params: { id: 'tk2' } }])
    wrapper.unmount()
  })

  it('says the tickets cannot be shown when the service desk did not answer', async () => {
    fakeGateway((call) => (call.url === '/customers/c1/360' ? { body: { ...view, tickets: null, partial: ['tickets'] } } : undefined))
    const wrapper = mount360()
    await settle()
    expect(wrapper.find('[data-test="customer-tickets"]').text()).toContain('工单暂时无法显示')
    expect(wrapper.find('[data-test="customer-tickets-table"]').exists()).toBe(false)
    wrapper.unmount()
  })

  it('says a record outside the view is not found, and shows none of it', async () => {
    fakeGateway(() => ({ status: 404, body: { status: 404, title: 'Not Found' } }))
    const wrapper = mount360()
    await settle()
    expect(wrapper.text()).toContain('记录不存在，或不在您的可见范围内。')
    expect(wrapper.find('h1').exists()).toBe(false)
    wrapper.unmount()
  })

  it('logs a follow-up for this customer', async () => {
    const calls = fakeGateway((call) => {
      if (call.url === '/customers/c1/360') return { body: view }
      if (call.url === '/followups') return { status: 201, body: { id: 'f2' } }
      return undefined
    })
    const wrapper = mount360()
    await settle()
    await wrapper.find('[data-test="log-followup"]').trigger('click')
    await settle()
    const subject = document.body.querySelector('[data-test="followup-form"] input[name="subject"]') as HTMLInputElement
    subject.value = '上门拜访'
    subject.dispatchEvent(new Event('input'))
    ;(document.body.querySelector('[data-test="save-followup"]') as HTMLButtonElement).click()
    await settle()
    const posted = calls.find((call) => call.url === '/followups')!
    expect(posted.body).toMatchObject({ kind: 'call', customer_id: 'c1', subject: '上门拜访' })
    expect(calls.filter((call) => call.url === '/customers/c1/360')).toHaveLength(2) // reloaded
    wrapper.unmount()
  })
})

describe('inbox badge', () => {
  it('counts the unread notifications', async () => {
    fakeGateway(() => ({ body: { items: [
      { id: 'n1', title: 'a', body: null, record_type: null, record_id: null, created_at: '', read_at: null },
      { id: 'n2', title: 'b', body: null, record_type: null, record_id: null, created_at: '', read_at: '2026-12-01' },
      { id: 'n3', title: 'c', body: null, record_type: null, record_id: null, created_at: '', read_at: null },
    ] } }))
    await refreshInbox()
    expect(unread.value).toBe(2)
  })
})
