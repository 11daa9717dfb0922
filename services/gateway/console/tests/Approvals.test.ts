import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import { h } from 'vue'
import { createMemoryHistory, createRouter, RouterView } from 'vue-router'
import Approvals from '../src/views/Approvals.vue'
import { session } from '../src/session'
import { fakeGateway, plugins, settle, typeInto, valueOf } from './helpers'

const manager = { id: 'u-mgr', username: 'manager', display_name: '王经理', role: 'manager', team_id: 't1' }
const HASH = 'a'.repeat(64)

function approval(overrides: Record<string, unknown> = {}) {
  return {
    id: 'ap1', record_type: 'purchase', record_id: 'PO-1', status: 'pending', flow_id: 'f1',
    flow_name: '采购审批', submitter: 'u-rep', terms: { amount: '5000.00', supplier: '苏州精工', lines: [{ sku: 'A-1', qty: 2 }] },
    terms_hash: HASH, terms_version: 2, current_step: 0, pending_approvers: ['u-mgr', 'u-lina'], cc: [],
    steps: [
      { index: 0, name: '主管或签', mode: 'any', quorum: null, status: 'pending', approvers: ['u-mgr', 'u-lina'], answers: {}, notes: [] },
      { index: 1, name: '财务会签', mode: 'all', quorum: null, status: 'waiting', approvers: ['u-fin'], answers: {}, notes: [] },
      { index: 2, name: '三选二', mode: 'quorum', quorum: 2, status: 'waiting', approvers: ['u-a', 'u-b', 'u-c'], answers: {}, notes: [] },
    ],
    trail: [{ at: '2026-12-03T08:00:00+00:00', actor: 'u-rep', action: 'submitted', comment: '请审批', step: null, terms_hash: HASH, terms_version: 2 }],
    submitted_at: '2026-12-03T08:00:00+00:00', finished_at: null, ...overrides,
  }
}

beforeEach(() => {
  session.me = { ...manager }
  session.users = {
    'u-mgr': manager,
    'u-rep': { id: 'u-rep', username: 'zhangwei', display_name: '张伟', team_id: 't1' },
    'u-lina': { id: 'u-lina', username: 'lina', display_name: '李娜', team_id: 't1' },
  }
})
const mounted: { unmount: () => void }[] = []
afterEach(() => { mounted.splice(0).forEach((w) => { try { w.unmount() } catch { /* already */ } }); vi.unstubAllGlobals(); document.body.innerHTML = ''; session.me = null; session.users = {} })

async function mountAt(path: string) {
  const router = createRouter({
    history: createMemoryHistory('/console/'),
    routes: [
      { path: '/approvals', name: 'approvals', component: Approvals },
      { path: '/approvals/:id', name: 'approval', component: Approvals, props: true },
    ],
  })
  router.push(path)
  await router.isReady()
  const wrapper = mount({ render: () => h(RouterView) }, { global: { plugins: [...plugins(), router] }, attachTo: document.body })
  mounted.push(wrapper)
  await settle()
  return { wrapper, router }
}

describe('Approvals', () => {
  it('shows my inbox and opens an approval with its terms, steps and trail', async () => {
    const calls = fakeGateway((call) => {
      if (call.method === 'GET' && call.url.startsWith('/approvals?')) return { body: { items: [approval()], next_cursor: null } }
      if (call.method === 'GET' && call.url === '/approvals/ap1') return { body: approval() }
      return undefined
    })
    const { wrapper, router } = await mountAt('/approvals')
    expect(calls[0].url).toContain('/approvals?')
    const item = wrapper.find('[data-test="approval-item"]')
    expect(item.text()).toContain('采购审批')
    expect(item.text()).toContain('PO-1')
    expect(item.text()).toContain('张伟')
    expect(item.text()).toContain('主管或签')
    expect(item.attributes('aria-label')).toBe('查看审批 采购审批')
    expect(item.element.tagName).toBe('BUTTON') // reachable by keyboard

    await item.trigger('click')
    await settle()
    expect(router.currentRoute.value.fullPath).toBe('/approvals/ap1')
    const detail = wrapper.find('[data-test="approval-detail"]')
    expect(detail.find('[data-test="approval-status"]').text()).toBe('审批中')
    expect(detail.find('[data-test="terms"]').text()).toContain('5000.00')
    expect(detail.find('[data-test="terms"]').text()).toContain('苏州精工')
    expect(detail.find('[data-test="terms-version"]').text()).toBe('第 2 版')
    const steps = detail.findAll('[data-test="step"]').map((step) => step.text())
    expect(steps[0]).toContain('或签（任一人同意）')
    expect(steps[1]).toContain('会签（全部同意）')
    expect(steps[2]).toContain('2/3 人同意即通过')
    const trail = detail.findAll('[data-test="trail-entry"]').map((entry) => entry.text())
    expect(trail).toHaveLength(1)
    expect(trail[0]).toContain('张伟')
    expect(trail[0]).toContain('提交')
    expect(trail[0]).toContain('请审批')
    expect(trail[0]).toContain('第 2 版')
    // the comment box has its label
    expect(document.querySelector('label[for="approval-comment"]')?.textContent).toBe('审批意见')
    wrapper.unmount()
  })

  it('approves with the comment and the hash of the terms shown, then shows the new trail', async () => {
    let current = approval()
    const calls = fakeGateway((call) => {
      if (call.method === 'GET' && call.url === '/approvals/ap1') return { body: current }
      if (call.method === 'POST' && call.url === '/approvals/ap1/approve') {
        current = approval({
          status: 'approved', current_step: null, pending_approvers: [], finished_at: '2026-12-03T09:00:00+00:00',
          trail: [...current.trail, { at: '2026-12-03T09:00:00+00:00', actor: 'u-mgr', action: 'approve', comment: (call.body as { comment: string }).comment, step: 0, terms_hash: HASH, terms_version: 2 }],
        })
        return { body: current }
      }
      return undefined
    })
    const { wrapper } = await mountAt('/approvals/ap1')
    typeInto('#approval-comment', '价格合理，同意')
    await settle()
    await wrapper.find('[data-test="approve"]').trigger('click')
    await settle()
    const post = calls.find((call) => call.method === 'POST')!
    expect(post.url).toBe('/approvals/ap1/approve')
    expect(post.body).toEqual({ comment: '价格合理，同意', terms_hash: HASH })
    expect(wrapper.find('[data-test="approval-status"]').text()).toBe('已通过')
    const comments = wrapper.findAll('[data-test="trail-comment"]').map((c) => c.text())
    expect(comments).toEqual(['请审批', '价格合理，同意'])
    expect(wrapper.find('[data-test="answer-form"]').exists()).toBe(false) // nothing left to answer
    wrapper.unmount()
  })

  it('shows a 409 at the answer in the user\'s language and keeps the comment', async () => {
    let posts = 0
    const calls = fakeGateway((call) => {
      if (call.method === 'GET' && call.url === '/approvals/ap1') return { body: approval({ terms_version: posts ? 3 : 2 }) }
      if (call.method === 'POST' && call.url === '/approvals/ap1/reject') {
        posts += 1
        return { status: 409, body: { status: 409, title: 'Conflict', detail: 'The terms changed since you saw them', terms_hash: 'b'.repeat(64) } }
      }
      if (call.method === 'POST' && call.url === '/approvals/ap1/approve') {
        return { status: 409, body: { status: 409, title: 'Conflict', detail: 'You have already answered this step' } }
      }
      return undefined
    })
    const { wrapper } = await mountAt('/approvals/ap1')
    typeInto('#approval-comment', '金额超预算')
    await settle()
    await wrapper.find('[data-test="reject"]').trigger('click')
    await settle()
    expect(calls.find((call) => call.method === 'POST')!.body).toEqual({ comment: '金额超预算', terms_hash: HASH })
    const alert = wrapper.find('[data-test="answer-form"] [role="alert"]')
    expect(alert.exists()).toBe(true)
    expect(alert.text()).toContain('提交的内容已变更')
    expect(alert.text()).toContain('第 3 版') // reloaded: the latest terms are on screen
    expect(alert.text()).not.toContain('The terms changed')
    expect(wrapper.find('[data-test="terms-version"]').text()).toBe('第 3 版')
    expect(valueOf('#approval-comment')).toBe('金额超预算')

    await wrapper.find('[data-test="approve"]').trigger('click')
    await settle()
    expect(wrapper.find('[data-test="answer-form"] [role="alert"]').text()).toContain('您已审批过这一步骤')
    expect(valueOf('#approval-comment')).toBe('金额超预算')
    wrapper.unmount()
  })

  it('delegates the step to a colleague (not the submitter, not those already asked)', async () => {
    session.users['u-chen'] = { id: 'u-chen', username: 'chenjing', display_name: '陈静', team_id: 't2' }
    const calls = fakeGateway((call) => {
      if (call.method === 'GET' && call.url === '/approvals/ap1') return { body: approval() }
      if (call.method === 'POST' && call.url === '/approvals/ap1/delegate') return { body: approval({ pending_approvers: ['u-lina', 'u-chen'] }) }
      return undefined
    })
    const { wrapper } = await mountAt('/approvals/ap1')
    await wrapper.find('[data-test="delegate-to"] .el-select__wrapper').trigger('click')
    await settle()
    const options = [...document.querySelectorAll('.el-select-dropdown__item')].map((o) => o.textContent?.trim())
    expect(options).toEqual(['陈静'])
    ;(document.querySelector('.el-select-dropdown__item') as HTMLElement).click()
    await settle()
    await wrapper.find('[data-test="delegate"]').trigger('click')
    await settle()
    expect(calls.find((call) => call.method === 'POST')).toMatchObject({ url: '/approvals/ap1/delegate', body: { to_user: 'u-chen', comment: null } })
    expect(wrapper.find('[data-test="approve"]').exists()).toBe(false) // no longer asked of me
    wrapper.unmount()
  })

  it('in English: the submitter recalls with a comment and cannot approve', async () => {
    session.me = { id: 'u-rep', username: 'zhangwei', display_name: '张伟', role: 'sales_rep', team_id: 't1' }
    const calls = fakeGateway((call) => {
      if (call.method === 'GET' && call.url === '/approvals/ap1') return { body: approval() }
      if (call.method === 'POST' && call.url === '/approvals/ap1/recall') return { body: approval({ status: 'recalled', pending_approvers: [] }) }
      return undefined
    })
    const router = createRouter({ history: createMemoryHistory('/console/'), routes: [{ path: '/approvals/:id', name: 'approval', component: Approvals, props: true }, { path: '/approvals', name: 'approvals', component: Approvals }] })
    router.push('/approvals/ap1')
    await router.isReady()
    const wrapper = mount({ render: () => h(RouterView) }, { global: { plugins: [...plugins('en'), router] }, attachTo: document.body })
    await settle()
    expect(wrapper.find('[data-test="approve"]').exists()).toBe(false) // the submitter does not approve
    expect(wrapper.find('[data-test="steps"]').text()).toContain('Any one approves (或签)')
    typeInto('#approval-comment', 'wrong supplier')
    await settle()
    await wrapper.find('[data-test="recall"]').trigger('click')
    await settle()
    ;(document.body.querySelector('.el-message-box .el-button--primary') as HTMLElement).click()
    await settle(10)
    expect(calls.find((call) => call.method === 'POST')).toMatchObject({ url: '/approvals/ap1/recall', body: { comment: 'wrong supplier' } })
    expect(wrapper.find('[data-test="approval-status"]').text()).toBe('Recalled')
    wrapper.unmount()
  })
  it('lists my own submissions under the 我提交的 tab (box=submitted), with their status', async () => {
    const mine = approval({ id: 'ap9', submitter: 'u-mgr', status: 'recalled', current_step: null, pending_approvers: [], flow_name: '我的报销' })
    const calls = fakeGateway((call) => {
      if (call.method === 'GET' && call.url.startsWith('/approvals?') && call.url.includes('box=submitted')) return { body: { items: [mine], next_cursor: null } }
      if (call.method === 'GET' && call.url.startsWith('/approvals?') && call.url.includes('box=inbox')) return { body: { items: [approval()], next_cursor: null } }
      return undefined
    })
    const { wrapper } = await mountAt('/approvals')
    expect(calls[0].url).toContain('box=inbox')
    const tabs = wrapper.findAll('[data-test="approval-boxes"] [role="tab"]').map((tab) => tab.text())
    expect(tabs).toEqual(['待我审批', '我提交的'])
    expect(wrapper.findAll('[data-test="approval-item"]').map((item) => item.text())[0]).toContain('采购审批')

    await wrapper.findAll('[data-test="approval-boxes"] [role="tab"]')[1].trigger('click')
    await settle()
    expect(calls[calls.length - 1].url).toContain('box=submitted')
    const items = wrapper.findAll('[data-test="approval-item"]')
    expect(items).toHaveLength(1)
    expect(items[0].text()).toContain('我的报销')
    expect(items[0].find('[data-test="approval-item-status"]').text()).toBe('已撤回')
    expect(wrapper.find('[data-test="approval-inbox"]').attributes('aria-label')).toBe('我提交的')
    wrapper.unmount()
  })

  it('shows whom an approval was delegated to in the trail', async () => {
    const trail = [
      { at: '2026-12-03T08:00:00+00:00', actor: 'u-rep', action: 'submitted', comment: null, step: null, terms_hash: HASH, terms_version: 2 },
      { at: '2026-12-03T08:01:00+00:00', actor: 'u-mgr', action: 'delegated', comment: '请代批', step: 0, to_user: 'u-lina', terms_hash: HASH, terms_version: 2 },
    ]
    fakeGateway((call) => (call.method === 'GET' && call.url === '/approvals/ap1' ? { body: approval({ trail }) } : undefined))
    const { wrapper } = await mountAt('/approvals/ap1')
    const entries = wrapper.findAll('[data-test="trail-entry"]')
    expect(entries).toHaveLength(2)
    expect(entries[0].find('[data-test="trail-delegate"]').exists()).toBe(false)
    expect(entries[1].text()).toContain('王经理')
    expect(entries[1].find('[data-test="trail-delegate"]').text()).toBe('· 转交给 李娜')
    wrapper.unmount()
  })
})
