import { afterEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import CustomerQuotes from '../src/components/CustomerQuotes.vue'
import CustomerContracts from '../src/components/CustomerContracts.vue'
import type { Locale } from '../src/i18n'
import { click, fakeGateway, plugins, settle, type Call } from './helpers'

afterEach(() => { vi.unstubAllGlobals(); document.body.innerHTML = '' })

const totals = { subtotal: '100000.00', discount_total: '5000.00', net_total: '95000.00', tax_total: '12350.00', grand_total: '107350.00' }
const quote = {
  id: 'q1-aaaaaaaa', opportunity_id: 'o1', customer_id: 'c1', status: 'draft', version: 2, current_version: 2, title: 'MES 一期报价',
  currency: 'CNY', valid_until: '2027-01-31', discount: null, lines: [{
    product_id: 'p1', product_code: 'MES-STD', product_name: 'MES 标准版', unit: '套', quantity: '1', unit_price: '100000.00',
    discount: { kind: 'percent', value: '5' }, tax_rate: '13', gross: '100000.00', net: '95000.00', tax: '12350.00', total: '107350.00',
  }], totals, amount_in_words: '壹拾万柒仟叁佰伍拾元整',
}
const contract = {
  id: 'k1', number: 'HT-2026-000123', status: 'active', title: 'MES 一期合同', customer_id: 'c1', opportunity_id: 'o1', owner_id: 'u1',
  amount: '107350.00', currency: 'CNY', start_date: '2026-12-01', end_date: '2027-11-30',
}
type Answer = { status?: number; body?: unknown; headers?: Record<string, string> }
const mountQuotes = (locale: Locale = 'zh-CN') => mount(CustomerQuotes, { props: { customerId: 'c1' }, global: { plugins: plugins(locale) }, attachTo: document.body })

describe('Customer quotes', () => {
  it('lists the quotes; a quote shows its lines, totals and 大写; a draft is submitted', async () => {
    const calls = fakeGateway((call) => {
      if (call.url === '/quotes?customer_id=c1&limit=50') return { body: { items: [quote], next_cursor: null } }
      if (call.url === '/quotes/q1-aaaaaaaa' && call.method === 'GET') return { body: quote }
      if (call.url === '/quotes/q1-aaaaaaaa/submit') return { body: { ...quote, status: 'in_approval' } }
      return undefined
    })
    const wrapper = mountQuotes()
    await settle()
    expect(wrapper.find('[data-test="quotes-table"]').text()).toContain('107350.00 CNY')
    expect(wrapper.find('[data-test="quotes-table"]').text()).toContain('草稿')
    await wrapper.find('[data-test="open-quote"]').trigger('click')
    await settle()
    const lines = document.querySelector('[data-test="quote-lines"]')!.textContent!
    expect(lines).toContain('MES 标准版')
    expect(lines).toContain('1 套')
    expect(lines).toContain('5%')
    expect(lines).toContain('13%')
    expect(document.querySelector('[data-test="quote-totals"]')!.textContent).toContain('12350.00')
    expect(document.querySelector('[data-test="quote-words"]')!.textContent).toBe('壹拾万柒仟叁佰伍拾元整')
    click('[data-test="submit-quote"]')
    await settle()
    expect(calls.filter((call: Call) => call.method === 'POST').map((call) => call.url)).toEqual(['/quotes/q1-aaaaaaaa/submit'])
    expect(document.querySelector('[data-test="quote-status"]')!.textContent).toBe('审批中')
    expect(document.querySelector('[data-test="submit-quote"]')).toBeNull() // no longer a draft
    wrapper.unmount()
  })

  it('a refused submit (412, 409, 503 with Retry-After) is the dialog alert, in English too; the quote stays shown', async () => {
    let answer: Answer = { status: 412, body: { status: 412, detail: 'Only a draft is submitted.' } }
    fakeGateway((call) => {
      if (call.url.startsWith('/quotes?')) return { body: { items: [quote], next_cursor: null } }
      if (call.url === '/quotes/q1-aaaaaaaa') return { body: quote }
      if (call.url === '/quotes/q1-aaaaaaaa/submit') return answer
      return undefined
    })
    const wrapper = mountQuotes('en')
    await settle()
    await wrapper.find('[data-test="open-quote"]').trigger('click')
    await settle()
    const alert = () => document.querySelector('.el-dialog .error-alert')?.textContent ?? ''
    click('[data-test="submit-quote"]')
    await settle()
    expect(alert()).toContain('Not possible yet: a precondition is not met.')
    answer = { status: 409, body: { status: 409, detail: 'the quote changed' } }
    click('[data-test="submit-quote"]')
    await settle()
    expect(alert()).toContain('Conflict: the quote changed')
    answer = { status: 503, body: { status: 503 }, headers: { 'Retry-After': '4' } }
    click('[data-test="submit-quote"]')
    await settle()
    expect(alert()).toContain('try again in 4 s')
    expect(document.querySelector('[data-test="quote-words"]')!.textContent).toBe('壹拾万柒仟叁佰伍拾元整')
    wrapper.unmount()
  })

  it('downloads the PDF with the token; a 403 is the dialog alert', async () => {
    sessionStorage.setItem('crm.console.token', 'tok-1')
    let forbidden = false
    const calls = fakeGateway((call) => {
      if (call.url.startsWith('/quotes?')) return { body: { items: [quote], next_cursor: null } }
      if (call.url === '/quotes/q1-aaaaaaaa') return { body: quote }
      if (call.url === '/quotes/q1-aaaaaaaa/pdf') return forbidden ? { status: 403, body: { status: 403 } } : { body: '%PDF-1.7' }
      return undefined
    })
    const wrapper = mountQuotes()
    await settle()
    await wrapper.find('[data-test="open-quote"]').trigger('click')
    await settle()
    click('[data-test="quote-pdf"]')
    await settle()
    const pdf = calls.find((call) => call.url === '/quotes/q1-aaaaaaaa/pdf')!
    expect(pdf.headers.Authorization).toBe('Bearer tok-1')
    expect(document.querySelector('.el-dialog .error-alert')).toBeNull()
    forbidden = true
    click('[data-test="quote-pdf"]')
    await settle()
    expect(document.querySelector('.el-dialog .error-alert')!.textContent).toContain('您没有执行此操作的权限')
    sessionStorage.clear()
    wrapper.unmount()
  })
})

describe('Customer contracts', () => {
  it('lists the contracts; a contract shows its receivables and receipts with what they paid', async () => {
    fakeGateway((call) => {
      if (call.url === '/contracts?customer_id=c1&limit=50') return { body: { items: [contract], next_cursor: null } }
      if (call.url === '/contracts/k1') return { body: contract }
      if (call.url === '/contracts/k1/receivables') return { body: { contract_amount: '107350.00', received: '50000.00', outstanding: '57350.00', overdue: '7350.00' } }
      if (call.url === '/contracts/k1/receipts') {
        return { body: { items: [{ id: 'r1', contract_id: 'k1', amount: '50000.00', received_on: '2026-12-02', method: 'bank', reference: 'BK-889',
          allocations: [{ instalment_id: 'inst01-xyz', amount: '50000.00' }], created_at: '2026-12-02T08:00:00+00:00' }] } }
      }
      return undefined
    })
    const wrapper = mount(CustomerContracts, { props: { customerId: 'c1' }, global: { plugins: plugins() }, attachTo: document.body })
    await settle()
    const table = wrapper.find('[data-test="contracts-table"]').text()
    expect(table).toContain('HT-2026-000123')
    expect(table).toContain('执行中')
    expect(table).toContain('2026-12-01 ~ 2027-11-30')
    await wrapper.find('[data-test="open-contract"]').trigger('click')
    await settle()
    const owed = document.querySelector('[data-test="contract-receivables"]')!.textContent!
    expect(owed).toContain('57350.00')
    expect(owed).toContain('7350.00')
    expect(document.querySelector('[data-test="contract-receivables"] .overdue')).not.toBeNull()
    const receipts = document.querySelector('[data-test="contract-receipts"]')!.textContent!
    expect(receipts).toContain('BK-889')
    expect(receipts).toContain('#inst01 50000.00')
    wrapper.unmount()
  })

  it('a contract out of view (404) is the dialog alert', async () => {
    fakeGateway((call) => (call.url.startsWith('/contracts?') ? { body: { items: [contract], next_cursor: null } } : undefined))
    const wrapper = mount(CustomerContracts, { props: { customerId: 'c1' }, global: { plugins: plugins() }, attachTo: document.body })
    await settle()
    await wrapper.find('[data-test="open-contract"]').trigger('click')
    await settle()
    expect(document.querySelector('.el-dialog .error-alert')!.textContent).toContain('记录不存在，或不在您的可见范围内')
    wrapper.unmount()
  })
})
