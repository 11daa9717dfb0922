import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import Account from '../src/views/Account.vue'
import { getToken, setToken } from '../src/api'
import { session } from '../src/session'
import { errorsShown, fakeGateway, plugins, settle, submitForm, typeInto, valueOf } from './helpers'

const rep = { id: 'u-rep', username: 'zhangwei', display_name: '张伟', role: 'sales_rep', team_id: 't1' }
const key = { id: 'k1', user_id: 'u-rep', name: 'ERP 同步', prefix: 'crm_ab12', created_at: '2026-12-01T08:00:00+00:00', last_used_at: null, revoked_at: null }

beforeEach(() => { session.me = { ...rep }; setToken('old-token') })
afterEach(() => { vi.unstubAllGlobals(); document.body.innerHTML = ''; session.me = null; setToken(null) })

const mountView = () => mount(Account, { global: { plugins: plugins() }, attachTo: document.body })

describe('Account', () => {
  it('changes the password: a wrong current password is shown at its field, then the new token is kept', async () => {
    let attempts = 0
    const calls = fakeGateway((call) => {
      if (call.method === 'GET' && call.url.startsWith('/api-keys')) return { body: { items: [], next_cursor: null } }
      if (call.method === 'POST' && call.url === '/me/password') {
        attempts += 1
        if (attempts === 1) return { status: 422, body: { status: 422, errors: { current_password: ['Wrong password.'] } } }
        return { body: { token: 'new-token', token_type: 'Bearer', expires_at: '2026-12-04T00:00:00+00:00' } }
      }
      return undefined
    })
    const wrapper = mountView()
    await settle()
    typeInto('#current-password', 'not-mine')
    typeInto('#new-password', 'a-new-password-1')
    submitForm('[data-test="password-form"]')
    await settle()
    await errorsShown()
    const fieldError = document.querySelector('#current-password')!.closest('.el-form-item')!.querySelector('.el-form-item__error')
    expect(fieldError?.textContent).toContain('Wrong password')
    expect(document.body.querySelector('[data-test="password-form"] [role="alert"]')).not.toBeNull()
    expect(valueOf('#new-password')).toBe('a-new-password-1') // nothing typed is lost
    expect(getToken()).toBe('old-token')

    typeInto('#current-password', 'demo-password')
    submitForm('[data-test="password-form"]')
    await settle()
    const posts = calls.filter((call) => call.method === 'POST')
    expect(posts.at(-1)!.body).toEqual({ current_password: 'demo-password', new_password: 'a-new-password-1' })
    expect(getToken()).toBe('new-token')
    expect(valueOf('#current-password')).toBe('')
    wrapper.unmount()
  })

  it('creates an API key, shows it once, and revokes a key', async () => {
    let items = [key]
    const calls = fakeGateway((call) => {
      if (call.method === 'GET' && call.url.startsWith('/api-keys')) return { body: { items, next_cursor: null } }
      if (call.method === 'POST' && call.url === '/api-keys') {
        const created = { ...key, id: 'k2', name: (call.body as { name: string }).name, prefix: 'crm_cd34' }
        items = [...items, created]
        return { status: 201, body: { ...created, key: 'crm_cd34.secret-value' } }
      }
      if (call.method === 'DELETE' && call.url === '/api-keys/k1') { items = items.filter((row) => row.id !== 'k1'); return { status: 204 } }
      return undefined
    })
    const wrapper = mountView()
    await settle()
    expect(wrapper.find('[data-test="keys-table"]').text()).toContain('ERP 同步')
    typeInto('#key-name', 'OA 集成')
    submitForm('[data-test="key-form"]')
    await settle()
    expect(calls.find((call) => call.method === 'POST')!.body).toEqual({ name: 'OA 集成' })
    expect(wrapper.find('[data-test="new-key"]').text()).toContain('crm_cd34.secret-value')
    expect(wrapper.find('[data-test="keys-table"]').text()).toContain('OA 集成')

    await wrapper.find('[aria-label="吊销 ERP 同步"]').trigger('click')
    await settle()
    ;(document.body.querySelector('.el-message-box .el-button--primary') as HTMLElement).click()
    await settle(10)
    expect(calls.some((call) => call.method === 'DELETE' && call.url === '/api-keys/k1')).toBe(true)
    expect(wrapper.find('[data-test="keys-table"]').text()).not.toContain('ERP 同步')
    wrapper.unmount()
  })
})
