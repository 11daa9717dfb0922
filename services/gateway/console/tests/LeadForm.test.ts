import { afterEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import LeadForm from '../src/components/LeadForm.vue'
import { fakeGateway, plugins, settle } from './helpers'

afterEach(() => vi.unstubAllGlobals())

function mountForm(locale: 'zh-CN' | 'en' = 'zh-CN') {
  return mount(LeadForm, { global: { plugins: plugins(locale) }, attachTo: document.body })
}

describe('LeadForm', () => {
  it('shows each 422 message under its field and keeps what was typed', async () => {
    fakeGateway(() => ({ status: 422, body: { status: 422, errors: { email: ['Not a valid email address.'] } } }))
    const wrapper = mountForm()
    await wrapper.find('input[name=name]').setValue('李雷')
    await wrapper.find('input[name=email]').setValue('not-an-email')
    await wrapper.find('form').trigger('submit')
    await settle()
    await new Promise((resolve) => setTimeout(resolve, 250)) // the form item shows errors debounced
    expect(wrapper.text()).toContain('邮箱格式不正确')
    expect(wrapper.text()).toContain('请修正标出的字段。')
    expect((wrapper.find('input[name=name]').element as HTMLInputElement).value).toBe('李雷')
    expect((wrapper.find('input[name=email]').element as HTMLInputElement).value).toBe('not-an-email')
    wrapper.unmount()
  })

  it('offers to merge a duplicate (409) and merges on request', async () => {
    const calls = fakeGateway((call) => (call.url.includes('on_duplicate=merge')
      ? { status: 200, body: { id: 'lead-1', name: '李雷' } }
      : { status: 409, body: { status: 409, existing_id: 'lead-1', matches: [{ lead_id: 'lead-1', reason: 'phone', score: 100, exact: true }] } }))
    const wrapper = mountForm('en')
    await wrapper.find('input[name=name]').setValue('李雷')
    await wrapper.find('input[name=phone]').setValue('13800138000')
    await wrapper.find('form').trigger('submit')
    await settle()
    const duplicate = wrapper.find('[data-test="duplicate"]')
    expect(duplicate.exists()).toBe(true)
    expect(duplicate.text()).toContain('A lead with the same phone exists.')
    expect(duplicate.text()).toContain('lead-1')
    await wrapper.find('[data-test="merge"]').trigger('click')
    await settle()
    expect(calls.at(-1)!.url).toBe('/leads?on_duplicate=merge')
    expect(calls.at(-1)!.body).toMatchObject({ name: '李雷', phone: '13800138000', source: 'website' })
    expect(wrapper.emitted('created')).toHaveLength(1)
    wrapper.unmount()
  })

  it('leaves empty optional fields out of the request', async () => {
    const calls = fakeGateway(() => ({ status: 201, body: { id: 'lead-2' } }))
    const wrapper = mountForm()
    await wrapper.find('input[name=name]').setValue('王芳')
    await wrapper.find('form').trigger('submit')
    await settle()
    expect(calls[0].body).toEqual({ name: '王芳', source: 'website' })
    wrapper.unmount()
  })
})
