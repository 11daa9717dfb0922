import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import { h } from 'vue'
import { createMemoryHistory, createRouter, RouterView } from 'vue-router'
import DeskQueue from '../src/views/desk/DeskQueue.vue'
import DeskTicket from '../src/views/desk/DeskTicket.vue'
import Knowledge from '../src/views/desk/Knowledge.vue'
import { session } from '../src/session'
import { nextStatuses, safeHighlight } from '../src/desk'
import { errorsShown, fakeGateway, plugins, settle, submitForm, typeInto, valueOf, type Call } from './helpers'

const agent = { id: 'u-agent', username: 'wangfang', display_name: '王芳', role: 'service_agent', team_id: 't1' }
const NOW = Date.now()
const iso = (minutes: number) => new Date(NOW + minutes * 60_000).toISOString()

function ticket(overrides: Record<string, unknown> = {}) {
  return {
    id: 'tk1', number: 'T-000042', subject: '打印机卡纸', requester_email: 'li@example.cn', requester_name: '李雷',
    status: 'open', priority: 'high', type: 'incident', category: null, tags: [], assignee_id: 'u-agent', group_id: 'g1',
    channel: 'email', customer_id: null, created_at: iso(-30), updated_at: iso(-5),
    entries: [
      { id: 'e1', seq: 1, kind: 'created', public: true, author_kind: 'customer', author_id: null, body: '第三台打印机卡纸了', from: null, to: null, at: iso(-30) },
      { id: 'e2', seq: 2, kind: 'reply', public: false, author_kind: 'agent', author_id: 'u-agent', body: '内部：先查保修', from: null, to: null, at: iso(-20) },
      { id: 'e3', seq: 3, kind: 'status_changed', public: null, author_kind: null, author_id: 'u-agent', body: null, from: 'new', to: 'open', at: iso(-19) },
    ],
    ...overrides,
  }
}

const SUMMARY = { state: 'breached', next_target: 'resolution', next_due_at: iso(200), breached_targets: ['first_reply'] }
const warnings = (passed: boolean) => [{ threshold: 0.75, at: null, passed }, { threshold: 0.9, at: null, passed }]
// GET /tickets/{id}/sla: the clocks by target (in no particular order)
const SLA = {
  ticket_id: 'tk1', policy_id: 'p1', policy_name: '紧急 1 小时', computed_at: iso(0), ticket: {},
  clocks: {
    resolution: { target: 'resolution', minutes: 240, business: false, state: 'running', due_at: iso(210), elapsed_seconds: 1800, remaining_seconds: 12600, paused: false, breached: false, breached_at: null, achieved_at: null, stopped_at: null, warnings: warnings(false) },
    next_reply: { target: 'next_reply', minutes: 60, business: false, state: 'running', due_at: iso(5), elapsed_seconds: 3300, remaining_seconds: 300, paused: false, breached: false, breached_at: null, achieved_at: null, stopped_at: null, warnings: warnings(true) },
    first_reply: { target: 'first_reply', minutes: 20, business: false, state: 'running', due_at: iso(-10), elapsed_seconds: 1800, remaining_seconds: -600, paused: false, breached: true, breached_at: iso(-10), achieved_at: null, stopped_at: null, warnings: warnings(true) },
  },
}

beforeEach(() => {
  session.me = { ...agent }
  session.users = { 'u-agent': agent, 'u-b': { id: 'u-b', username: 'zhao', display_name: '赵敏', team_id: 't1' } }
})
const mounted: { unmount: () => void }[] = []
afterEach(() => { mounted.splice(0).forEach((w) => { try { w.unmount() } catch { /* already */ } }); vi.unstubAllGlobals(); document.body.innerHTML = ''; session.me = null; session.users = {} })

async function mountAt(path: string, locale: 'zh-CN' | 'en' = 'zh-CN') {
  const router = createRouter({
    history: createMemoryHistory('/console/'),
    routes: [
      { path: '/desk', name: 'desk', component: DeskQueue },
      { path: '/desk/tickets/:id', name: 'desk-ticket', component: DeskTicket, props: true },
      { path: '/kb', name: 'kb', component: Knowledge },
      { path: '/kb/:id', name: 'kb-article', component: Knowledge, props: true },
    ],
  })
  router.push(path)
  await router.isReady()
  const wrapper = mount({ render: () => h(RouterView) }, { global: { plugins: [...plugins(locale), router] }, attachTo: document.body })
  mounted.push(wrapper)
  await settle(10)
  return { wrapper, router }
}

const queueUrls = (calls: Call[]) => calls.filter((c) => c.url.startsWith('/desk/queue')).map((c) => new URL(c.url, 'http://x').searchParams)

describe('DeskQueue', () => {
  it('shows my tickets with their SLA state, switches views and filters, and opens a ticket', async () => {
    const calls = fakeGateway((call) => {
      if (call.url.startsWith('/desk/queue')) {
        return { body: { items: [{ ...ticket({ entries: undefined }), sla: SUMMARY },
          { ...ticket({ id: 'tk2', number: 'T-000043', subject: '发票', entries: undefined, assignee_id: null }), sla: { state: 'warning', next_target: 'first_reply', next_due_at: iso(5), breached_targets: [] } }], next_cursor: null } }
      }
      if (call.url === '/ticket-groups') return { body: { items: [{ id: 'g1', name: '一线支持', manager_id: null, members: [] }] } }
      return undefined
    })
    const { wrapper, router } = await mountAt('/desk')
    expect(queueUrls(calls)[0].get('view')).toBe('mine')
    const cards = wrapper.findAll('[data-test="queue-item"]')
    expect(cards).toHaveLength(2)
    expect(cards[0].text()).toContain('T-000042')
    expect(cards[0].text()).toContain('打印机卡纸')
    expect(cards[0].text()).toContain('一线支持')
    expect(cards[0].find('[data-test="queue-item-sla"]').text()).toContain('已超时')
    expect(cards[0].find('[data-test="queue-item-sla"]').text()).toContain('解决 截止')
    expect(cards[0].classes()).toContain('sla-breached')
    expect(cards[1].find('[data-test="queue-item-sla"]').text()).toContain('即将超时')
    expect(cards[1].text()).toContain('未分配')
    expect(cards[0].element.tagName).toBe('BUTTON')

    // the views are tabs; the search goes with the view
    const tabs = wrapper.findAll('.el-tabs__item')
    expect(tabs.map((tab) => tab.text())).toEqual(['我的工单', '我所在组的工单', '未分配', '全部可见'])
    await tabs[2].trigger('click')
    await settle()
    expect(queueUrls(calls).at(-1)!.get('view')).toBe('unassigned')
    typeInto('input[data-test="queue-search"]', 'T-000042')
    submitForm('.filters')
    await settle()
    const last = queueUrls(calls).at(-1)!
    expect(last.get('q')).toBe('T-000042')
    expect(last.get('view')).toBe('unassigned')

    await cards[0].trigger('click')
    await settle()
    expect(router.currentRoute.value.fullPath).toBe('/desk/tickets/tk1')
  })

  it('shows a 422 on the search field and keeps what was typed', async () => {
    fakeGateway((call) => {
      if (call.url.startsWith('/desk/queue') && call.url.includes('q=')) {
        return { status: 422, body: { status: 422, title: 'Validation failed', errors: { q: ['Length must be between 1 and 200.'] } } }
      }
      if (call.url.startsWith('/desk/queue')) return { body: { items: [], next_cursor: null } }
      if (call.url === '/ticket-groups') return { body: { items: [] } }
      return undefined
    })
    const { wrapper } = await mountAt('/desk')
    expect(wrapper.find('[data-test="queue-empty"]').text()).toBe('没有符合条件的工单')
    typeInto('input[data-test="queue-search"]', 'x'.repeat(10))
    submitForm('.filters')
    await settle()
    await errorsShown()
    expect(document.querySelector('[data-test="queue-search"]')!.closest('.el-form-item')!.textContent).toContain('长度应在 1 到 200 之间')
    expect(valueOf('input[data-test="queue-search"]')).toBe('x'.repeat(10))
    expect(wrapper.find('.error-alert').text()).toContain('请修正标出的字段')
  })
})

describe('DeskTicket', () => {
  function gateway(extra: (call: Call) => { status?: number; body?: unknown } | undefined = () => undefined, state = { ticket: ticket() }) {
    return fakeGateway((call) => {
      const answer = extra(call)
      if (answer) return answer
      if (call.method === 'GET' && call.url === '/tickets/tk1') return { body: state.ticket }
      if (call.url === '/tickets/tk1/sla') return { body: SLA }
      if (call.url === '/tickets/tk1/attachments') return { body: { items: [{ id: 'a1', ticket_id: 'tk1', entry_id: 'e1', filename: '照片.jpg', content_type: 'image/jpeg', size: 2048, sha256: 'x', created_at: iso(-30) }] } }
      if (call.url === '/ticket-groups') return { body: { items: [{ id: 'g1', name: '一线支持', manager_id: null, members: [{ user_id: 'u-c' }] }] } }
      if (call.url === '/kb/suggestions') return { body: { items: [{ id: 'kb1', title: '打印机卡纸怎么办', status: 'published', score: 1, title_highlight: '<mark>打印机</mark>卡纸怎么办<img src=x onerror=alert(1)>', snippet: '先关机，再取出<mark>卡纸</mark>' }], terms: [] } }
      return undefined
    })
  }

  it('shows the conversation with internal notes, attachments, SLA clocks and suggestions', async () => {
    const calls = gateway()
    const { wrapper } = await mountAt('/desk/tickets/tk1')
    expect(wrapper.find('[data-test="ticket-subject"]').text()).toBe('打印机卡纸')
    const messages = wrapper.findAll('[data-test="message"]')
    expect(messages).toHaveLength(2)
    expect(messages[0].text()).toContain('李雷')
    expect(messages[0].text()).toContain('照片.jpg')
    expect(messages[1].attributes('data-kind')).toBe('internal')
    expect(messages[1].find('[data-test="internal-note"]').text()).toBe('内部备注')
    expect(wrapper.find('[data-test="history"]').text()).toContain('状态：新建 → 处理中')
    expect(wrapper.find('[data-test="ticket-group"]').text()).toBe('一线支持')
    const clocks = wrapper.findAll('[data-test="sla-clock"]')
    expect(clocks.map((c) => c.attributes('data-target'))).toEqual(['first_reply', 'next_reply', 'resolution'])
    expect(clocks[0].find('[data-test="sla-clock-state"]').text()).toBe('已超时')
    expect(clocks[0].find('[data-test="sla-clock-remaining"]').text()).toBe('已超时 10 分钟')
    expect(clocks[1].find('[data-test="sla-clock-state"]').text()).toBe('即将超时')
    expect(clocks[1].find('[data-test="sla-clock-remaining"]').text()).toBe('剩余 5 分钟')
    expect(clocks[2].find('[data-test="sla-clock-state"]').text()).toBe('计时中')
    expect(clocks[2].find('[data-test="sla-clock-remaining"]').text()).toBe('剩余 3 小时 30 分')
    // suggestions for the ticket, the highlight keeps <mark> and nothing else
    expect(calls.find((c) => c.url === '/kb/suggestions')!.body).toMatchObject({ subject: '打印机卡纸' })
    const suggestion = wrapper.find('[data-test="suggestion"]')
    expect(suggestion.html()).toContain('<mark>打印机</mark>')
    expect(suggestion.html()).not.toContain('<img')
    await suggestion.find('[data-test="suggestion-quote"]').trigger('click')
    expect(valueOf('#reply-body')).toContain('打印机卡纸怎么办: ')
    expect(valueOf('#reply-body')).toContain('/console/kb/kb1')
  })

  it('sends a public reply, and keeps the text with the error at its field on a 422', async () => {
    let fail = true
    const calls = gateway((call) => {
      if (call.method === 'POST' && call.url === '/tickets/tk1/replies') {
        if (fail) return { status: 422, body: { status: 422, title: 'Validation failed', errors: { body: ['Length must be between 1 and 100000.'] } } }
        return { status: 201, body: { ...ticket(), entry: {} } }
      }
      return undefined
    })
    const { wrapper } = await mountAt('/desk/tickets/tk1')
    typeInto('#reply-body', '您好，请先关机再取出卡纸。')
    await wrapper.find('[data-test="reply-form"]').trigger('submit')
    await settle()
    await errorsShown()
    expect(document.querySelector('#reply-body')!.closest('.el-form-item')!.textContent).toContain('长度应在 1 到 100000 之间')
    expect(valueOf('#reply-body')).toBe('您好，请先关机再取出卡纸。')
    fail = false
    await wrapper.find('[data-test="reply-form"]').trigger('submit')
    await settle()
    const posts = calls.filter((c) => c.method === 'POST' && c.url === '/tickets/tk1/replies')
    expect(posts.at(-1)!.body).toEqual({ body: '您好，请先关机再取出卡纸。', public: true })
    expect(valueOf('#reply-body')).toBe('')
  })

  it('adds an internal note, sets solved, shows a refused move, and makes a draft article', async () => {
    const state = { ticket: ticket() }
    const calls = gateway((call) => {
      if (call.method === 'POST' && call.url === '/tickets/tk1/replies') return { status: 201, body: { ...state.ticket, entry: {} } }
      if (call.method === 'PATCH' && call.url === '/tickets/tk1') {
        const body = call.body as Record<string, string>
        if (body.status === 'closed') return { status: 412, body: { status: 412, title: 'Precondition failed', from: 'solved', to: 'closed' } }
        state.ticket = { ...state.ticket, ...body }
        return { body: state.ticket }
      }
      if (call.method === 'POST' && call.url === '/tickets/tk1/kb-draft') return { status: 201, body: { id: 'kb9', title: '打印机卡纸', status: 'draft' } }
      return undefined
    }, state)
    const { wrapper } = await mountAt('/desk/tickets/tk1')
    await wrapper.find('[data-test="reply-internal"] input').setValue(true)
    await settle()
    expect(wrapper.find('[data-test="reply-send"]').text()).toBe('添加备注')
    typeInto('#reply-body', '已联系厂家')
    await wrapper.find('[data-test="reply-form"]').trigger('submit')
    await settle()
    expect(calls.filter((c) => c.url === '/tickets/tk1/replies').at(-1)!.body).toEqual({ body: '已联系厂家', public: false })

    expect(wrapper.find('[data-test="draft"]').exists()).toBe(false) // not solved yet
    await wrapper.find('[data-test="ticket-solve"]').trigger('click')
    await settle()
    expect(calls.filter((c) => c.method === 'PATCH').at(-1)!.body).toEqual({ status: 'solved' })
    expect(wrapper.find('[data-test="ticket-status"]').text()).toBe('已解决')
    expect(wrapper.find('[data-test="ticket-solve"]').exists()).toBe(false)

    // solved goes to open or closed only; the service's refusal is shown at the status field
    await wrapper.find('[data-test="ticket-status-select"]').trigger('click')
    await settle()
    const options = [...document.querySelectorAll('.el-select-dropdown__item')].map((o) => o.textContent?.trim())
    expect(options).toEqual(expect.arrayContaining(['已解决', '处理中', '已关闭']))
    expect(options).not.toContain('挂起');
    (([...document.querySelectorAll('.el-select-dropdown__item')].find((o) => o.textContent?.trim() === '已关闭')) as HTMLElement).click()
    await settle()
    await errorsShown()
    expect(calls.filter((c) => c.method === 'PATCH').at(-1)!.body).toEqual({ status: 'closed' })
    expect(document.querySelector('[data-test="ticket-status-select"]')!.closest('.el-form-item')!.textContent).toContain('工单不能从“已解决”改为“已关闭”')

    await wrapper.find('[data-test="make-draft"]').trigger('click')
    await settle()
    expect(wrapper.find('[data-test="draft-link"]').text()).toBe('查看草稿：打印机卡纸')
    expect(wrapper.find('[data-test="draft-link"]').attributes('href')).toBe('/console/kb/kb9')
  })

  it('shows a hidden ticket as not found, in English too', async () => {
    fakeGateway(() => undefined)
    const { wrapper } = await mountAt('/desk/tickets/elsewhere', 'en')
    expect(wrapper.find('[role="alert"]').text()).toBe('The record does not exist or is outside what you may see.')
    expect(wrapper.find('[data-test="ticket"]').exists()).toBe(false)
  })
})

describe('Knowledge', () => {
  it('searches with highlighted snippets, opens an article and takes "was this helpful"', async () => {
    const calls = fakeGateway((call) => {
      if (call.url.startsWith('/kb/search')) return { body: { items: [{ id: 'kb1', title: '如何申请退款', status: 'published', score: 2, title_highlight: '如何申请<mark>退款</mark>', snippet: '…在订单页点<mark>退款</mark>…<script>x</script>' }], terms: ['退款'] } }
      if (call.url === '/kb/articles/kb1') return { body: { id: 'kb1', title: '如何申请退款', body: '第一段\n\n第二段', body_format: 'text', status: 'published', version: 2, tags: ['退款'], language: 'zh', helpful_yes: 3, helpful_no: 1, updated_at: iso(0), source_ticket_id: null } }
      if (call.url === '/kb/articles/kb1/feedback') return { status: 201, body: { article_id: 'kb1', helpful_yes: 4, helpful_no: 1, feedback_count: 5 } }
      return undefined
    })
    const { wrapper, router } = await mountAt('/kb')
    typeInto('input[data-test="kb-search"]', '退款')
    await wrapper.find('form.search').trigger('submit')
    await settle()
    expect(calls[0].url).toBe('/kb/search?q=%E9%80%80%E6%AC%BE&limit=20')
    const hit = wrapper.find('[data-test="kb-hit"]')
    expect(hit.html()).toContain('<mark>退款</mark>')
    expect(hit.find('[data-test="kb-hit-snippet"]').html()).not.toContain('<script')
    await hit.find('a').trigger('click')
    await settle()
    expect(router.currentRoute.value.fullPath).toBe('/kb/kb1')
    expect(wrapper.find('[data-test="kb-article-title"]').text()).toBe('如何申请退款')
    expect(wrapper.findAll('[data-test="kb-article-body"] p').map((p) => p.text())).toEqual(['第一段', '第二段'])
    typeInto('textarea[data-test="kb-feedback-comment"]', '很清楚')
    await wrapper.find('[data-test="kb-helpful-yes"]').trigger('click')
    await settle()
    expect(calls.at(-1)!.body).toEqual({ helpful: true, comment: '很清楚' })
    expect(wrapper.find('[data-test="kb-helpful-yes"]').text()).toContain('(4)')
    expect(wrapper.find('[data-test="kb-feedback-done"]').text()).toBe('感谢您的反馈')
  })

  it('asks for a word before searching', async () => {
    const calls = fakeGateway(() => undefined)
    const { wrapper } = await mountAt('/kb')
    await wrapper.find('form.search').trigger('submit')
    await settle()
    await errorsShown()
    expect(calls).toHaveLength(0)
    expect(document.querySelector('[data-test="kb-search"]')!.closest('.el-form-item')!.textContent).toContain('必填')
  })
})

describe('desk helpers', () => {
  it('offers the allowed moves and keeps only <mark> in highlights', () => {
    expect(nextStatuses('solved')).toEqual(['open', 'closed'])
    expect(nextStatuses('closed')).toEqual([])
    expect(nextStatuses('new')).toEqual(['open', 'pending', 'on_hold', 'solved', 'closed'])
    expect(safeHighlight('<mark>a</mark><b onclick=x>b</b>')).toBe('<mark>a</mark>b')
  })
})
