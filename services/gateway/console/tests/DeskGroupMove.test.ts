// the ticket page: moving a ticket to another group (POST /tickets/{id}/group)
import { afterEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import { h } from 'vue'
import { createMemoryHistory, createRouter, RouterView } from 'vue-router'
import DeskTicket from '../src/views/desk/DeskTicket.vue'
import { session } from '../src/session'
import { errorsShown, fakeGateway, plugins, settle, type Call } from './helpers'

const GROUPS = [
  { id: 'g1', name: '一线支持', manager_id: 'u-boss1', members: [{ user_id: 'u-agent' }, { user_id: 'u-b' }] },
  { id: 'g2', name: '二线网络', manager_id: 'u-boss2', members: [{ user_id: 'u-c' }] },
  { id: 'g3', name: '三线研发', manager_id: 'u-boss3', members: [] },
]
const base = {
  id: 'tk1', number: 'T-000042', subject: '打印机卡纸', requester_email: 'li@example.cn', requester_name: '李雷',
  status: 'open', priority: 'high', type: 'incident', category: null, tags: [], assignee_id: 'u-agent', group_id: 'g1',
  channel: 'email', customer_id: null, created_at: '2026-12-03T08:00:00+00:00', updated_at: '2026-12-03T08:00:00+00:00',
  entries: [{ id: 'e1', seq: 1, kind: 'created', public: true, author_kind: 'customer', author_id: null, body: '卡纸', from: null, to: null, at: '2026-12-03T08:00:00+00:00' }],
}

afterEach(() => { vi.unstubAllGlobals(); document.body.innerHTML = ''; session.me = null; session.users = {} })

function as(id: string, role = 'service_agent') {
  session.me = { id, username: id, display_name: id, role, team_id: 't1' }
  session.users = { [id]: session.me }
}

function gateway(state: { ticket: Record<string, unknown> }, move: (call: Call) => { status?: number; body?: unknown } | undefined = () => undefined) {
  return fakeGateway((call) => {
    if (call.method === 'POST' && call.url === '/tickets/tk1/group') {
      const answer = move(call)
      if (answer) return answer
      const to = (call.body as { group_id: string }).group_id
      state.ticket = { ...state.ticket, group_id: to, assignee_id: null, entries: [...(state.ticket.entries as unknown[]),
        { id: 'e9', seq: 9, kind: 'group_changed', public: false, author_kind: 'agent', author_id: session.me?.id, body: null, from: 'g1', to, at: '2026-12-03T09:00:00+00:00' }] }
      return { body: state.ticket }
    }
    if (call.method === 'GET' && call.url === '/tickets/tk1') return { body: state.ticket }
    if (call.url === '/tickets/tk1/sla') return { body: { ticket_id: 'tk1', policy_id: null, policy_name: null, computed_at: '', clocks: {} } }
    if (call.url === '/tickets/tk1/attachments') return { body: { items: [] } }
    if (call.url === '/ticket-groups') return { body: { items: GROUPS } }
    if (call.url === '/kb/suggestions') return { body: { items: [] } }
    return undefined
  })
}

async function mountTicket(locale: 'zh-CN' | 'en' = 'zh-CN') {
  const router = createRouter({ history: createMemoryHistory('/console/'), routes: [
    { path: '/desk', name: 'desk', component: { template: '<div />' } },
    { path: '/desk/tickets/:id', name: 'desk-ticket', component: DeskTicket, props: true },
  ] })
  router.push('/desk/tickets/tk1')
  await router.isReady()
  const wrapper = mount({ render: () => h(RouterView) }, { global: { plugins: [...plugins(locale), router] }, attachTo: document.body })
  await settle(10)
  return wrapper
}

const options = () => [...document.querySelectorAll('.el-select-dropdown__item')].map((o) => o.textContent?.trim())
async function pick(wrapper: Awaited<ReturnType<typeof mountTicket>>, name: string) {
  await wrapper.find('[data-test="ticket-group-select"]').trigger('click')
  await settle()
  ;([...document.querySelectorAll('.el-select-dropdown__item')].find((o) => o.textContent?.trim() === name) as HTMLElement).click()
  await settle(8)
}

describe('moving a ticket to another group', () => {
  it('a member of its group moves it anywhere; the move is in the history', async () => {
    as('u-agent')
    const state = { ticket: { ...base } }
    const calls = gateway(state)
    const wrapper = await mountTicket()
    await wrapper.find('[data-test="ticket-group-select"]').trigger('click')
    await settle()
    expect(options()).toEqual(expect.arrayContaining(['二线网络', '三线研发']))
    expect(options()).not.toContain('一线支持')
    await pick(wrapper, '二线网络')
    expect(calls.filter((c) => c.url === '/tickets/tk1/group').map((c) => c.body)).toEqual([{ group_id: 'g2' }])
    expect(wrapper.find('[data-test="ticket-group"]').text()).toBe('二线网络')
    expect(wrapper.find('[data-test="history"]').text()).toContain('处理组：一线支持 → 二线网络')
    wrapper.unmount()
  })

  it('another group\'s manager only to their own group; someone else sees no selector', async () => {
    as('u-boss3', 'manager')
    let wrapper = await mountTicket((gateway({ ticket: { ...base } }), 'zh-CN'))
    await wrapper.find('[data-test="ticket-group-select"]').trigger('click')
    await settle()
    expect(options()).toContain('三线研发')
    expect(options()).not.toContain('二线网络')
    wrapper.unmount()
    document.body.innerHTML = ''
    as('u-lead', 'manager') // sees the ticket as the assignee's team lead: no group of theirs
    gateway({ ticket: { ...base } })
    wrapper = await mountTicket()
    expect(wrapper.find('[data-test="ticket-group"]').text()).toBe('一线支持')
    expect(wrapper.find('[data-test="ticket-group-select"]').exists()).toBe(false)
    wrapper.unmount()
    document.body.innerHTML = ''
    as('u-agent') // a closed ticket stays
    gateway({ ticket: { ...base, status: 'closed' } })
    wrapper = await mountTicket()
    expect(wrapper.find('[data-test="ticket-group-select"]').exists()).toBe(false)
    wrapper.unmount()
  })

  it('a refusal is shown at the group, in English too', async () => {
    as('u-agent')
    const state = { ticket: { ...base } }
    let answer: { status: number; body: unknown } = { status: 422, body: { status: 422, errors: { group_id: ['no such ticket group'] } } }
    const calls = gateway(state, () => answer)
    const wrapper = await mountTicket('en')
    await pick(wrapper, '三线研发')
    await errorsShown()
    expect(calls.filter((c) => c.url === '/tickets/tk1/group')).toHaveLength(1)
    const field = () => document.querySelector('[data-test="ticket-group"]')!.closest('.el-form-item')!.textContent
    expect(field()).toContain('no such ticket group')
    answer = { status: 403, body: { status: 403, title: 'Forbidden' } }
    await pick(wrapper, '二线网络')
    await errorsShown()
    expect(field()).toContain('You may not move this ticket')
    expect(wrapper.find('[data-test="ticket-group"]').text()).toBe('一线支持')
    wrapper.unmount()
  })
})
