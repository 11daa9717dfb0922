import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import UsersTab from '../src/views/admin/UsersTab.vue'
import UserDialog from '../src/views/admin/UserDialog.vue'
import { session } from '../src/session'
import { click, errorsShown, fakeGateway, formItemText, plugins, settle, submitForm, typeInto, valueOf, type Call } from './helpers'

const admin = { id: 'u-admin', username: 'admin', display_name: '管理员', role: 'admin', team_id: null, active: true }
const manager = { id: 'u-mgr', username: 'manager', display_name: '王经理', role: 'manager', team_id: 't1', active: true }
const rep = { id: 'u-rep', username: 'zhangwei', display_name: '张伟', role: 'sales_rep', team_id: 't1', active: true, email: null }
const team = { id: 't1', name: '华东销售部', manager_id: 'u-mgr', member_ids: ['u-mgr', 'u-rep'] }

beforeEach(() => { session.me = { ...admin } })
afterEach(() => { vi.unstubAllGlobals(); document.body.innerHTML = ''; session.me = null })

function gateway(answer: (call: Call) => { status?: number; body?: unknown } | undefined) {
  return fakeGateway((call) => {
    if (call.method === 'GET' && call.url.startsWith('/users?')) return { body: { items: [admin, manager, rep], next_cursor: null } }
    if (call.method === 'GET' && call.url.startsWith('/teams?')) return { body: { items: [team], next_cursor: null } }
    return answer(call)
  })
}

const mountTab = () => mount(UsersTab, { global: { plugins: plugins() }, attachTo: document.body })

describe('Users tab', () => {
  it('creates a user; a 422 is shown at its fields and what was typed stays', async () => {
    let attempts = 0
    const calls = gateway((call) => {
      if (call.method !== 'POST' || call.url !== '/users') return undefined
      attempts += 1
      if (attempts === 1) return { status: 422, body: { status: 422, errors: { email: ['Not a valid email address.'] } } }
      return { status: 201, body: { ...rep, id: 'u-new', username: 'liuyang', display_name: '刘洋' } }
    })
    const wrapper = mountTab()
    await settle()
    expect(wrapper.find('[data-test="users-table"]').text()).toContain('zhangwei')
    expect(wrapper.find('[data-test="teams-table"]').text()).toContain('华东销售部')
    await wrapper.find('[data-test="new-user"]').trigger('click')
    await settle()
    typeInto('#user-username', 'liuyang')
    typeInto('#user-display-name', '刘洋')
    typeInto('#user-email', 'not-an-email')
    typeInto('#user-password', 'secret-pass-1')
    wrapper.findComponent(UserDialog).vm.form.team_id = 't1'
    await settle()
    submitForm('[data-test="user-form"]')
    await settle()
    await errorsShown()
    expect(formItemText('#user-email')).toContain('邮箱格式不正确')
    expect(document.body.querySelector('[data-test="user-form"] [data-test="form-error"]')!.textContent).toContain('请修正标出的字段。')
    expect(valueOf('#user-username')).toBe('liuyang')
    expect(valueOf('#user-email')).toBe('not-an-email')

    typeInto('#user-email', 'liuyang@example.com')
    submitForm('[data-test="user-form"]')
    await settle()
    const posts = calls.filter((call) => call.method === 'POST')
    expect(posts.at(-1)!.body).toEqual({
      username: 'liuyang', display_name: '刘洋', email: 'liuyang@example.com', password: 'secret-pass-1',
      role: 'sales_rep', team_id: 't1',
    })
    expect(calls.filter((call) => call.url.startsWith('/users?'))).toHaveLength(2) // reloaded
    wrapper.unmount()
  })

  it('shows a taken username (409) at the username field', async () => {
    gateway((call) => (call.method === 'POST'
      ? { status: 409, body: { status: 409, detail: 'This username is taken.', errors: { username: ['Already exists.'] } } } : undefined))
    const wrapper = mountTab()
    await settle()
    await wrapper.find('[data-test="new-user"]').trigger('click')
    await settle()
    typeInto('#user-username', 'zhangwei')
    typeInto('#user-display-name', '张伟二')
    submitForm('[data-test="user-form"]')
    await settle()
    await errorsShown()
    expect(formItemText('#user-username')).toContain('已存在')
    expect(valueOf('#user-display-name')).toBe('张伟二')
    wrapper.unmount()
  })

  it('deactivates a user and changes the role, leaving the password alone', async () => {
    const calls = gateway((call) => (call.method === 'PATCH' ? { body: { ...rep, active: false, role: 'service_agent' } } : undefined))
    const wrapper = mountTab()
    await settle()
    const row = wrapper.findAll('[data-test="users-table"] .el-table__body tr').find((tr) => tr.text().includes('zhangwei'))!
    await row.find('[data-test="edit-user"]').trigger('click')
    await settle()
    expect(document.body.querySelector('#user-username')).toBeNull() // a username does not change
    expect(valueOf('#user-display-name')).toBe('张伟')
    const dialog = wrapper.findComponent(UserDialog)
    dialog.vm.form.role = 'service_agent'
    click('[data-test="user-active"]')
    await settle()
    submitForm('[data-test="user-form"]')
    await settle()
    const patch = calls.find((call) => call.method === 'PATCH')!
    expect(patch.url).toBe('/users/u-rep')
    expect(patch.body).toEqual({ display_name: '张伟', email: null, role: 'service_agent', team_id: 't1', active: false })
    wrapper.unmount()
  })

  it('creates a team with a manager, and renames one (a taken name at the field)', async () => {
    const calls = gateway((call) => {
      if (call.method === 'POST' && call.url === '/teams') return { status: 201, body: { id: 't2', name: '华南销售部', manager_id: 'u-mgr', member_ids: [] } }
      if (call.method === 'PATCH') return { status: 409, body: { status: 409, errors: { name: ['Already exists.'] } } }
      return undefined
    })
    const wrapper = mountTab()
    await settle()
    await wrapper.find('[data-test="new-team"]').trigger('click')
    await settle()
    typeInto('#team-name', '华南销售部')
    const panel = wrapper.findComponent({ name: 'TeamsPanel' })
    ;(panel.vm as unknown as { form: { manager_id: string } }).form.manager_id = 'u-mgr'
    submitForm('[data-test="team-form"]')
    await settle()
    expect(calls.find((call) => call.method === 'POST')!.body).toEqual({ name: '华南销售部', manager_id: 'u-mgr' })

    await wrapper.find('[data-test="edit-team"]').trigger('click')
    await settle()
    expect(valueOf('#team-name')).toBe('华东销售部')
    typeInto('#team-name', '华北销售部')
    submitForm('[data-test="team-form"]')
    await settle()
    await errorsShown()
    const patch = calls.find((call) => call.method === 'PATCH')!
    expect(patch.url).toBe('/teams/t1')
    expect(patch.body).toEqual({ name: '华北销售部', manager_id: 'u-mgr' })
    expect(formItemText('#team-name')).toContain('已存在')
    expect(valueOf('#team-name')).toBe('华北销售部')
    wrapper.unmount()
  })

  it('hides the create and edit buttons from a manager', async () => {
    session.me = { ...manager }
    gateway(() => undefined)
    const wrapper = mountTab()
    await settle()
    expect(wrapper.find('[data-test="users-table"]').text()).toContain('zhangwei')
    expect(wrapper.find('[data-test="new-user"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="edit-user"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="new-team"]').exists()).toBe(false)
    wrapper.unmount()
  })
})
