// the contract page's writes: payment plan, receipts, invoices
import { afterEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import Contract from '../src/views/Contract.vue'
import PaymentPlanForm from '../src/components/contract/PaymentPlanForm.vue'
import ReceiptForm from '../src/components/contract/ReceiptForm.vue'
import InvoiceForm from '../src/components/contract/InvoiceForm.vue'
import type { Locale } from '../src/i18n'
import { errorsShown, fakeGateway, formItemText, plugins, settle, typeInto, valueOf } from './helpers'

afterEach(() => { vi.unstubAllGlobals(); document.body.innerHTML = '' })

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const mountIt = (component: any, props: Record<string, unknown>, locale: Locale = 'zh-CN') =>
  mount(component, { props, attachTo: document.body, global: { plugins: plugins(locale) } })

const instalments = [
  { id: 'i1', seq: 1, due_date: '2027-01-31', amount: '60000.00', paid: '0.00', status: 'pending' },
  { id: 'i2', seq: 2, due_date: '2027-06-30', amount: '40000.00', paid: '0.00', status: 'pending' },
]

describe('payment plan form', () => {
  it('sends amounts and percentages; the 422 on the sum is shown at the plan, in the user\'s language, input kept', async () => {
    let tries = 0
    const calls = fakeGateway((call) => {
      if (call.url === '/contracts/k1/payment-plan' && call.method === 'PUT') {
        tries += 1
        if (tries === 1) {
          return { status: 422, body: { status: 422, errors: { instalments: ['the instalments total 120000.00 exceeds the contract amount 100000.00'] } } }
        }
        return { body: { items: instalments } }
      }
      return undefined
    })
    const wrapper = mountIt(PaymentPlanForm, { contractId: 'k1', contractAmount: '100000.00' })
    await settle()
    typeInto('#plan-0-due', '2027-01-31')
    typeInto('#plan-0-value', '60')
    await wrapper.find('[data-test="plan-0-mode"] input[value="percentage"]').setValue(true)
    await wrapper.find('[data-test="plan-add"]').trigger('click')
    typeInto('#plan-1-due', '2027-06-30')
    typeInto('#plan-1-value', '60000')
    await settle()
    expect(wrapper.find('[data-test="plan-sum"]').text()).toContain('120000.00 / 合同金额 100000.00')
    await wrapper.find('form').trigger('submit')
    await settle()
    await errorsShown()
    expect(calls[0].body).toEqual({ instalments: [
      { due_date: '2027-01-31', percentage: '60', label: null },
      { due_date: '2027-06-30', amount: '60000', label: null }] })
    expect(formItemText('[data-test="plan-sum"] span')).toContain('各期合计 120000.00 超过合同金额 100000.00')
    expect(valueOf('#plan-0-value')).toBe('60')
    expect(valueOf('#plan-1-value')).toBe('60000')
    expect(valueOf('#plan-1-due')).toBe('2027-06-30')
    typeInto('#plan-1-value', '40000')
    await wrapper.find('form').trigger('submit')
    await settle()
    expect(wrapper.emitted('saved')?.[0]).toEqual([instalments])
    wrapper.unmount()
  })

  it('maps a row\'s field errors to its inputs (English)', async () => {
    fakeGateway((call) => call.method === 'PUT'
      ? { status: 422, body: { status: 422, errors: { instalments: { 1: { due_date: ['Not a valid date.'] } }, 'instalments.0.amount': ['must be positive'] } } }
      : undefined)
    const wrapper = mountIt(PaymentPlanForm, { contractId: 'k1', contractAmount: '100000.00', current: instalments }, 'en')
    await settle()
    expect(valueOf('#plan-1-value')).toBe('40000.00') // the current plan, to replace
    typeInto('#plan-0-value', '0')
    typeInto('#plan-1-due', '')
    await wrapper.find('form').trigger('submit')
    await settle()
    await errorsShown()
    expect(formItemText('#plan-0-value')).toContain('Must be more than 0')
    expect(formItemText('#plan-1-due')).toContain('Not a valid date')
    expect(wrapper.find('[data-test="plan-error"]').text()).toContain('Please correct')
    expect(valueOf('#plan-0-value')).toBe('0')
    wrapper.unmount()
  })
})

describe('receipt form', () => {
  it('records amount, date, instalment and payer; 422 at the payer name, the rest kept', async () => {
    let tries = 0
    const calls = fakeGateway((call) => {
      if (call.url === '/contracts/k1/receipts' && call.method === 'POST') {
        tries += 1
        if (tries === 1) return { status: 422, body: { status: 422, errors: { 'payer.name': ['Length must be between 1 and 200.'] } } }
        return { status: 201, body: { id: 'r1', amount: '25000.00' } }
      }
      return undefined
    })
    const wrapper = mountIt(ReceiptForm, { contractId: 'k1', instalments })
    await settle()
    typeInto('#receipt-amount', '25000')
    typeInto('#receipt-date', '2027-01-20')
    typeInto('#receipt-reference', 'TT-1')
    typeInto('#receipt-payer-account', '6222 0000 1111')
    ;(wrapper.vm as unknown as { form: { instalment_id: string } }).form.instalment_id = 'i2'
    await wrapper.find('form').trigger('submit')
    await settle()
    await errorsShown()
    expect(calls[0].body).toEqual({ amount: '25000', received_on: '2027-01-20', method: null, reference: 'TT-1',
      instalment_id: 'i2', payer: { name: '', account: '6222 0000 1111', reference: null } })
    expect(formItemText('#receipt-payer-name')).toContain('长度应在 1 到 200 之间')
    expect(valueOf('#receipt-amount')).toBe('25000')
    expect(valueOf('#receipt-payer-account')).toBe('6222 0000 1111')
    typeInto('#receipt-payer-name', '苏州精工')
    await wrapper.find('form').trigger('submit')
    await settle()
    expect((calls[1].body as { payer: { name: string } }).payer.name).toBe('苏州精工')
    expect(wrapper.emitted('saved')).toHaveLength(1)
    wrapper.unmount()
  })

  it('the approval lock (409 in_approval) says so and keeps the input', async () => {
    fakeGateway((call) => call.method === 'POST'
      ? { status: 409, body: { status: 409, detail: 'The contract is locked while in approval', reason: 'in_approval', approval_id: 'ap1' } }
      : undefined)
    const wrapper = mountIt(ReceiptForm, { contractId: 'k1', instalments })
    await settle()
    typeInto('#receipt-amount', '100')
    await wrapper.find('form').trigger('submit')
    await settle()
    expect(wrapper.find('[data-test="receipt-error"]').text()).toContain('合同刚刚进入审批')
    expect(valueOf('#receipt-amount')).toBe('100')
    expect(wrapper.emitted('locked')).toHaveLength(1)
    wrapper.unmount()
  })
})

describe('invoice form', () => {
  it('issues for a receipt; a bad tax number (422) and a used number (409) at their fields', async () => {
    let tries = 0
    const calls = fakeGateway((call) => {
      if (call.url === '/contracts/k1/invoices' && call.method === 'POST') {
        tries += 1
        if (tries === 1) return { status: 422, body: { status: 422, errors: { tax_number: ['the check character does not match (GB 32100-2015)'] } } }
        if (tries === 2) return { status: 409, body: { status: 409, detail: 'invoice number FP-1 of type special is already used', field: 'number' } }
        return { status: 201, body: { id: 'v1' } }
      }
      return undefined
    })
    const receipts = [{ id: 'r1', amount: '25000.00', received_on: '2027-01-20', allocations: [] }]
    const wrapper = mountIt(InvoiceForm, { contractId: 'k1', receipts, instalments })
    await settle()
    typeInto('#invoice-title', '苏州精工有限公司')
    typeInto('#invoice-tax', '91320500MA1XXXXXX1')
    typeInto('#invoice-number', 'FP-1')
    typeInto('#invoice-date', '2027-01-21')
    await wrapper.find('[data-test="invoice-type"] input[value="special"]').setValue(true)
    await wrapper.find('[data-test="invoice-target"] input[value="receipt"]').setValue(true)
    ;(wrapper.vm as unknown as { form: { target_id: string } }).form.target_id = 'r1'
    await settle()
    expect(valueOf('#invoice-amount')).toBe('25000.00') // the receipt's amount proposed
    await wrapper.find('form').trigger('submit')
    await settle()
    await errorsShown()
    expect(calls[0].body).toEqual({ title: '苏州精工有限公司', tax_number: '91320500MA1XXXXXX1', type: 'special', number: 'FP-1',
      issued_on: '2027-01-21', amount: '25000.00', receipt_id: 'r1', instalment_id: null })
    expect(formItemText('#invoice-tax')).toContain('校验位不正确')
    await wrapper.find('form').trigger('submit')
    await settle()
    await errorsShown()
    expect(formItemText('#invoice-number')).toContain('该号码已被使用')
    expect(formItemText('#invoice-tax')).not.toContain('校验位')
    expect(valueOf('#invoice-title')).toBe('苏州精工有限公司')
    expect(valueOf('#invoice-number')).toBe('FP-1')
    typeInto('#invoice-number', 'FP-2')
    await wrapper.find('form').trigger('submit')
    await settle()
    expect(wrapper.emitted('saved')).toHaveLength(1)
    wrapper.unmount()
  })
})

describe('contract page buttons', () => {
  const contract = { id: 'k1', number: 'HT-2026-000123', status: 'active', title: 'MES', customer_id: 'c1', owner_id: 'u1',
    amount: '100000.00', currency: 'CNY', clauses: [], created_at: '2026-12-01T00:00:00+00:00', updated_at: '2026-12-01T00:00:00+00:00' }
  function page(status: string, receipts: unknown[] = []) {
    let plan = { items: [] as unknown[] }
    const calls = fakeGateway((call) => {
      if (call.url === '/contracts/k1') return { body: { ...contract, status } }
      if (call.url === '/contracts/k1/payment-plan' && call.method === 'PUT') { plan = { items: instalments }; return { body: plan } }
      if (call.url === '/contracts/k1/payment-plan') return { body: plan }
      if (call.url === '/contracts/k1/receivables') return { body: { contract_amount: '100000.00', received: '0.00', outstanding: plan.items.length ? '100000.00' : '0.00', overdue: '0.00', invoiced: '0.00' } }
      if (call.url === '/contracts/k1/receipts') return { body: { items: receipts } }
      if (call.url === '/contracts/k1/invoices' || call.url === '/contracts/k1/attachments') return { body: { items: [] } }
      if (call.url.startsWith('/approvals')) return { body: { items: [] } }
      return undefined
    })
    const wrapper = mount(Contract, { props: { id: 'k1' }, attachTo: document.body,
      global: { plugins: plugins(), stubs: { RouterLink: { template: '<a><slot /></a>' } } } })
    return { wrapper, calls }
  }

  it('an active contract: plan, receipt and invoice; saving the plan reloads it', async () => {
    const { wrapper, calls } = page('active')
    await settle()
    expect(wrapper.find('[data-test="contract-locked"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="issue-invoice"]').exists()).toBe(true)
    expect(wrapper.find('[data-test="record-receipt"]').exists()).toBe(true)
    await wrapper.find('[data-test="edit-plan"]').trigger('click')
    await settle()
    typeInto('#plan-0-due', '2027-01-31')
    typeInto('#plan-0-value', '100000')
    await wrapper.find('[data-test="plan-form"]').trigger('submit')
    await settle(8)
    expect(calls.some((call) => call.method === 'PUT')).toBe(true)
    expect(wrapper.find('[data-test="plan-form"]').exists()).toBe(false)
    expect(wrapper.findAll('[data-test="payment-plan"] .el-table__body tr')).toHaveLength(2)
    wrapper.unmount()
  })

  it('in approval: no write buttons, the lock said; with receipts the plan stays; a draft is not invoiced', async () => {
    let { wrapper } = page('in_approval')
    await settle()
    expect(wrapper.find('[data-test="contract-locked"]').text()).toContain('审批中')
    for (const button of ['edit-plan', 'record-receipt', 'issue-invoice']) expect(wrapper.find(`[data-test="${button}"]`).exists()).toBe(false)
    wrapper.unmount()
    ;({ wrapper } = page('active', [{ id: 'r1', amount: '1.00', received_on: '2027-01-01', allocations: [] }]))
    await settle()
    expect(wrapper.find('[data-test="edit-plan"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="plan-hint"]').text()).toContain('已有回款记录')
    wrapper.unmount()
    ;({ wrapper } = page('draft'))
    await settle()
    expect(wrapper.find('[data-test="edit-plan"]').exists()).toBe(true)
    expect(wrapper.find('[data-test="issue-invoice"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="invoice-hint"]').text()).toContain('签署后')
    wrapper.unmount()
  })
})
