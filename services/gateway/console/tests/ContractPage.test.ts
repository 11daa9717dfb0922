// the contract page
import { afterEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import Contract from '../src/views/Contract.vue'
import type { Locale } from '../src/i18n'
import { fakeGateway, plugins, settle, type Call } from './helpers'

afterEach(() => { vi.unstubAllGlobals(); document.body.innerHTML = '' })

const contract = {
  id: 'k1', number: 'HT-2026-000123', status: 'draft', title: 'MES 一期合同', customer_id: 'c1', opportunity_id: 'o1', owner_id: 'u1',
  amount: '300000.00', currency: 'CNY', start_date: '2026-12-01', end_date: '2027-11-30', parties: [],
  clauses: [{ code: 'pay', title: '付款方式', text: '分三期付款' }], created_at: '2026-12-01T00:00:00+00:00', updated_at: '2026-12-01T00:00:00+00:00',
}
const plan = { items: [
  { id: 'i1', seq: 1, due_date: '2026-12-10', amount: '100000.00', paid: '100000.00', status: 'paid' },
  { id: 'i2', seq: 2, due_date: '2027-01-10', amount: '100000.00', paid: '40000.00', status: 'overdue' },
  { id: 'i3', seq: 3, due_date: '2027-06-10', amount: '100000.00', paid: '0.00', status: 'pending' },
] }
const receivables = { contract_amount: '300000.00', received: '140000.00', outstanding: '160000.00', overdue: '60000.00', invoiced: '100000.00', uninvoiced: '200000.00' }
const receipts = { items: [{ id: 'r1', amount: '140000.00', received_on: '2026-12-09', method: 'bank', reference: 'TX-1',
  allocations: [{ instalment_id: 'i1', amount: '100000.00' }, { instalment_id: 'i2', amount: '40000.00' }] }] }
const invoices = { items: [{ id: 'v1', contract_id: 'k1', title: '苏州精工', type: 'special', number: 'FP-001', issued_on: '2026-12-12', amount: '100000.00', status: 'issued', source: 'user' }] }
const attachments = { items: [{ id: 'a1', contract_id: 'k1', filename: '盖章版.pdf', content_type: 'application/pdf', size: 204800, sha256: 'x', uploaded_by: 'u1', created_at: '2026-12-02T00:00:00+00:00' }] }

function gateway(extra: (call: Call) => { status?: number; body?: unknown } | undefined = () => undefined) {
  let current: Record<string, unknown> = { ...contract }
  return fakeGateway((call) => {
    const answer = extra(call)
    if (answer) return answer
    if (call.url === '/contracts/k1' && call.method === 'GET') return { body: current }
    if (call.url === '/contracts/k1/payment-plan') return { body: plan }
    if (call.url === '/contracts/k1/receivables') return { body: receivables }
    if (call.url === '/contracts/k1/receipts') return { body: receipts }
    if (call.url === '/contracts/k1/invoices') return { body: invoices }
    if (call.url === '/contracts/k1/attachments' && call.method === 'GET') return { body: attachments }
    if (call.url === '/approvals?box=submitted&limit=100') return { body: { items: [], next_cursor: null } }
    if (call.url === '/contracts/k1/sign') { current = { ...current, status: 'active' }; return { body: current } }
    return undefined
  })
}

const mountPage = (locale: Locale = 'zh-CN') => mount(Contract, {
  props: { id: 'k1' }, attachTo: document.body,
  global: { plugins: plugins(locale), stubs: { RouterLink: { props: ['to'], template: '<a :data-to="JSON.stringify(to)"><slot /></a>' } } },
})

describe('Contract page', () => {
  it('shows the terms, the payment plan (paid / outstanding / overdue), receipts, invoices and files', async () => {
    gateway()
    const wrapper = mountPage()
    await settle()
    expect(wrapper.find('h1').text()).toBe('HT-2026-000123 MES 一期合同')
    expect(wrapper.find('[data-test="contract-page-status"]').text()).toBe('草稿')
    expect(wrapper.find('[data-test="contract-approval"]').text()).toBe('未提交')
    expect(wrapper.find('[data-test="contract-clauses"]').text()).toContain('分三期付款')
    const rows = wrapper.findAll('[data-test="payment-plan"] .el-table__body tr')
    expect(rows).toHaveLength(3)
    expect(rows[1].text()).toContain('60000.00') // outstanding of the second
    expect(wrapper.find('[data-test="instalment-1"]').text()).toBe('已回款')
    expect(wrapper.find('[data-test="instalment-2"]').text()).toBe('已逾期')
    expect(wrapper.find('[data-test="instalment-3"]').text()).toBe('待回款')
    expect(wrapper.find('[data-test="contract-page-receivables"]').text()).toContain('160000.00')
    expect(wrapper.find('[data-test="contract-page-receipts"]').text()).toContain('#1 100000.00, #2 40000.00')
    expect(wrapper.find('[data-test="contract-invoices"]').text()).toContain('增值税专票')
    expect(wrapper.find('[data-test="contract-attachments"]').text()).toContain('盖章版.pdf')
    expect(wrapper.find('[data-test="contract-attachments"]').text()).toContain('200 KB')
    expect(wrapper.find('[data-test="contract-submit"]').exists()).toBe(true)
    wrapper.unmount()
  })

  it('signs a draft; a refusal (409) is shown and the page stays', async () => {
    let refused = true
    const calls = gateway((call) => {
      if (call.url === '/contracts/k1/sign' && refused) { refused = false; return { status: 409, body: { status: 409, detail: 'in approval' } } }
      return undefined
    })
    const wrapper = mountPage()
    await settle()
    await wrapper.find('[data-test="contract-sign"]').trigger('click')
    await settle()
    expect(wrapper.find('[role="alert"]').text()).toContain('in approval')
    expect(wrapper.find('[data-test="payment-plan"]').exists()).toBe(true)
    await wrapper.find('[data-test="contract-sign"]').trigger('click')
    await settle(8)
    expect(calls.filter((call) => call.url === '/contracts/k1/sign')).toHaveLength(2)
    expect(wrapper.find('[data-test="contract-page-status"]').text()).toBe('执行中')
    expect(wrapper.find('[data-test="contract-sign"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="contract-submit"]').exists()).toBe(false)
    wrapper.unmount()
  })

  it('uploads a file as multipart and lists it; a failed part shows its own error', async () => {
    let uploaded = false
    const calls = gateway((call) => {
      if (call.url === '/contracts/k1/attachments' && call.method === 'POST') { uploaded = true; return { status: 201, body: { id: 'a2' } } }
      if (call.url === '/contracts/k1/attachments' && uploaded) {
        return { body: { items: [...attachments.items, { ...attachments.items[0], id: 'a2', filename: '附件二.docx', size: 1024 }] } }
      }
      if (call.url === '/contracts/k1/invoices') return { status: 503, body: { status: 503 }, headers: { 'Retry-After': '7' } }
      return undefined
    })
    const wrapper = mountPage()
    await settle()
    expect(wrapper.text()).toContain('7 秒后重试')
    expect(wrapper.find('[data-test="payment-plan"] .el-table__body').text()).toContain('2027-06-10')
    const input = wrapper.find('[data-test="attachment-file"]').element as HTMLInputElement
    const chosen = new File(['hello'], '附件二.docx', { type: 'application/msword' })
    Object.defineProperty(input, 'files', { value: [chosen], configurable: true })
    await wrapper.find('[data-test="attachment-upload"]').trigger('click')
    await settle(8)
    const post = calls.find((call) => call.method === 'POST')!
    expect(post.body).toBeInstanceOf(FormData)
    expect(((post.body as FormData).get('file') as File).name).toBe('附件二.docx')
    expect(wrapper.find('[data-test="contract-attachments"]').text()).toContain('附件二.docx')
    wrapper.unmount()
  })

  it('in English, with the approval the caller submitted', async () => {
    gateway((call) => {
      if (call.url === '/approvals?box=submitted&limit=100') {
        return { body: { items: [{ id: 'ap1', record_type: 'contract', record_id: 'k1', status: 'pending' }], next_cursor: null } }
      }
      if (call.url === '/contracts/k1' && call.method === 'GET') return { body: { ...contract, status: 'in_approval' } }
      return undefined
    })
    const wrapper = mountPage('en')
    await settle()
    expect(wrapper.find('[data-test="contract-page-status"]').text()).toBe('In approval')
    expect(wrapper.find('[data-test="contract-approval"]').text()).toBe('Pending')
    expect(wrapper.find('[data-test="contract-approval"]').attributes('data-to')).toContain('ap1')
    expect(wrapper.find('[data-test="contract-sign"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="attachment-upload"]').exists()).toBe(false)
    expect(wrapper.text()).toContain('Payment plan')
    wrapper.unmount()
  })
})
