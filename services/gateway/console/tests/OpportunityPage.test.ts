// the opportunity page and its quotes
import { afterEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import Opportunity from '../src/views/Opportunity.vue'
import QuoteForm from '../src/components/QuoteForm.vue'
import type { Locale } from '../src/i18n'
import { errorsShown, fakeGateway, formItemText, plugins, settle, submitForm, typeInto, valueOf, type Call } from './helpers'

afterEach(() => { vi.unstubAllGlobals(); document.body.innerHTML = '' })

const opportunity = {
  id: 'o1', customer_id: 'c1', contact_id: 'ct2', pipeline_id: 'p1', stage_id: 's2', stage: { id: 's2', name: '方案报价', probability: 40, kind: 'open' },
  name: 'MES 一期', amount: '380000.00', currency: 'CNY', probability: 40, weighted_amount: '152000.00', expected_close_date: '2027-03-31',
  owner_id: 'u1', products: ['MES'], competitors: ['友商A'], status: 'open', won_lost_reason: null,
  history: [{ stage_id: 's1', stage_name: '初步接洽', entered_at: '2026-11-01T02:00:00+00:00', left_at: '2026-11-20T02:00:00+00:00', moved_by: 'u1' },
    { stage_id: 's2', stage_name: '方案报价', entered_at: '2026-11-20T02:00:00+00:00', left_at: null, moved_by: 'u1' }],
}
const contacts = [
  { id: 'ct1', customer_id: 'c1', name: '李工', title: '工程师', role: 'technical_evaluator', phone: '13900000001', email: null },
  { id: 'ct2', customer_id: 'c1', name: '王总', title: '总经理', role: 'decision_maker', phone: '13900000002', email: 'wang@example.com' },
]
const book = { id: 'b1', name: '2027 标准价', channel: 'direct', region: '华东', customer_tier: null, currency: 'CNY', active: true, tiers: [
  { product_id: 'p-mes', min_quantity: '1', unit_price: '100000.00' }, { product_id: 'p-mes', min_quantity: '10', unit_price: '90000.00' }] }
const products = [{ id: 'p-mes', code: 'MES-STD', name: 'MES 标准版', unit: '套', tax_rate: '13', active: true },
  { id: 'p-other', code: 'X', name: '不在价格表', unit: '个', tax_rate: '13', active: true }]
const created = {
  id: 'q9-bbbbbbbb', opportunity_id: 'o1', customer_id: 'c1', status: 'draft', version: 1, current_version: 1, title: 'MES 一期', currency: 'CNY',
  valid_until: '2027-01-31', lines: [{ product_id: 'p-mes', product_name: 'MES 标准版', product_code: 'MES-STD', unit: '套', quantity: '12', unit_price: '90000.00',
    price_source: { kind: 'price_book', price_book_name: '2027 标准价' }, discount: { kind: 'percent', value: '5' }, tax_rate: '13', total: '1159380.00' }],
  totals: { subtotal: '1080000.00', discount_total: '54000.00', tax_total: '133380.00', grand_total: '1159380.00' }, amount_in_words: '壹佰壹拾伍万玖仟叁佰捌拾元整',
}

function gateway(extra: (call: Call) => { status?: number; body?: unknown } | undefined = () => undefined) {
  let quotes: unknown[] = []
  const calls = fakeGateway((call) => {
    const answer = extra(call)
    if (answer) return answer
    if (call.url === '/opportunities/o1') return { body: opportunity }
    if (call.url === '/contacts?customer_id=c1&limit=100') return { body: { items: contacts, next_cursor: null } }
    if (call.url === '/quotes?opportunity_id=o1&limit=50') return { body: { items: quotes, next_cursor: null } }
    if (call.url === '/price-books?limit=100') return { body: { items: [book], next_cursor: null } }
    if (call.url === '/products?limit=200') return { body: { items: products, next_cursor: null } }
    if (call.url === '/quotes' && call.method === 'POST') { quotes = [created]; return { status: 201, body: created } }
    return undefined
  })
  return calls
}

const mountPage = (locale: Locale = 'zh-CN') => mount(Opportunity, {
  props: { id: 'o1' }, attachTo: document.body,
  global: { plugins: plugins(locale), stubs: { RouterLink: { props: ['to'], template: '<a :data-to="JSON.stringify(to)"><slot /></a>' } } },
})

describe('Opportunity page', () => {
  it('shows the stage, amount, history and contacts (its own contact first)', async () => {
    gateway()
    const wrapper = mountPage()
    await settle()
    expect(wrapper.find('h1').text()).toBe('MES 一期')
    expect(wrapper.find('[data-test="opportunity-stage"]').text()).toBe('方案报价')
    expect(wrapper.find('[data-test="opportunity-amount"]').text()).toBe('CNY 380000.00')
    expect(wrapper.find('[data-test="opportunity-facts"]').text()).toContain('进行中')
    expect(wrapper.find('[data-test="stage-history"]').text()).toContain('初步接洽')
    const rows = wrapper.findAll('[data-test="opportunity-contacts"] .el-table__body tr')
    expect(rows).toHaveLength(2)
    expect(rows[0].text()).toContain('王总')
    expect(rows[0].text()).toContain('主要联系人')
    expect(rows[0].text()).toContain('决策者')
    expect(wrapper.find('[data-test="opportunity-customer"]').attributes('data-to')).toContain('"c1"')
    expect(wrapper.find('[data-test="quotes-table"]').text()).toContain('暂无数据')
    wrapper.unmount()
  })

  it('creates a quote from the price book: a 422 at its line keeps what was typed, then it is listed and opened', async () => {
    let attempts = 0
    const calls = gateway((call) => {
      if (call.url !== '/quotes' || call.method !== 'POST') return undefined
      attempts += 1
      return attempts === 1 ? { status: 422, body: { status: 422, errors: { lines: { 0: { quantity: ['Not a valid number.'] } } } } } : undefined
    })
    const wrapper = mountPage()
    await settle()
    await wrapper.find('[data-test="new-quote"]').trigger('click')
    await settle()
    const form = wrapper.findComponent(QuoteForm)
    expect(form.vm.form.price_book_id).toBe('b1') // the first book is chosen
    expect(document.querySelector('#quote-title')).not.toBeNull()
    expect(valueOf('#quote-title')).toBe('MES 一期')
    form.vm.form.lines[0].product_id = 'p-mes'
    await settle()
    const placeholder = () => (document.querySelector('#line-0-price') as HTMLInputElement).placeholder
    expect(placeholder()).toBe('100000.00') // the book's price for 1
    typeInto('#line-0-quantity', '12')
    typeInto('#line-0-discount', '5')
    await settle()
    expect(placeholder()).toBe('90000.00') // for 12: its tier from 10 up
    typeInto('#line-0-quantity', '12x')
    await settle()
    submitForm('[data-test="quote-form"]')
    await settle()
    await errorsShown()
    expect(formItemText('#line-0-quantity')).toContain('请输入数字')
    expect(valueOf('#line-0-quantity')).toBe('12x')
    expect(valueOf('#line-0-discount')).toBe('5')

    typeInto('#line-0-quantity', '12')
    submitForm('[data-test="quote-form"]')
    await settle(8)
    const posts = calls.filter((call) => call.method === 'POST' && call.url === '/quotes')
    expect(posts).toHaveLength(2)
    expect(posts[1].body).toEqual({
      opportunity_id: 'o1', title: 'MES 一期', currency: 'CNY', channel: 'direct', region: '华东',
      lines: [{ product_id: 'p-mes', quantity: '12', discount: { kind: 'percent', value: '5' } }],
    })
    expect(wrapper.find('[data-test="quotes-table"]').text()).toContain('1159380.00 CNY')
    expect(document.querySelector('[data-test="quote-words"]')!.textContent).toBe(created.amount_in_words)
    expect(document.querySelector('[data-test="submit-quote"]')).not.toBeNull()
    wrapper.unmount()
  }, 60_000) // many renders: a hang guard for a loaded machine, not a timing

  it('offers only the products the chosen price book prices', async () => {
    gateway()
    // the form alone (lighter than the whole page on a loaded machine)
    const form = mount(QuoteForm, { props: { opportunityId: 'o1' }, global: { plugins: plugins('en') }, attachTo: document.body })
    const wrapper = form
    await settle()
    expect((form.vm as unknown as { form: { price_book_id: string } }).form.price_book_id).toBe('b1')
    const options = () => (form.vm as unknown as { choices: { id: string }[] }).choices.map((p) => p.id)
    expect(options()).toEqual(['p-mes'])
    form.vm.form.price_book_id = ''
    await settle()
    expect(options()).toEqual(['p-mes', 'p-other'])
    expect(document.body.textContent).toContain('Price book')
    wrapper.unmount()
  })

  it('an opportunity outside the caller\'s view is a 404 message and nothing else', async () => {
    gateway((call) => (call.url === '/opportunities/o1' ? { status: 404, body: { status: 404, title: 'Not Found' } } : undefined))
    const wrapper = mountPage()
    await settle()
    expect(wrapper.find('[role="alert"]').text()).toContain('不在您的可见范围')
    expect(wrapper.find('h1').exists()).toBe(false)
    wrapper.unmount()
  })
})
