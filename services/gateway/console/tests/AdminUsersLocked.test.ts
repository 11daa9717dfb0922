// the users' sign-in lock
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import UsersTab from '../src/views/admin/UsersTab.vue'
import { session } from '../src/session'
import { fakeGateway, plugins, settle } from './helpers'

const admin = { id: 'u-admin', username: 'admin', display_name: '管理员', role: 'admin', team_id: null, active: true, locked: false, locked_until: null }
const rep = { id: 'u-rep', username: 'zhangwei', display_name: '张伟', role: 'sales_rep', team_id: null, active: true, locked: true, locked_until: '2026-12-03T08:15:00+00:00' }

beforeEach(() => { session.me = { ...admin } as never })
afterEach(() => { vi.unstubAllGlobals(); document.body.innerHTML = ''; session.me = null })

describe('Users tab: sign-in lock', () => {
  it('shows who is locked; unlocking reads the list again and the flag is gone', async () => {
    let locked = true
    const calls = fakeGateway((call) => {
      if (call.url.startsWith('/users?')) return { body: { items: [admin, { ...rep, locked, locked_until: locked ? rep.locked_until : null }], next_cursor: null } }
      if (call.url.startsWith('/teams?')) return { body: { items: [], next_cursor: null } }
      if (call.url === '/users/u-rep/unlock') { locked = false; return { status: 204 } }
      return undefined
    })
    const wrapper = mount(UsersTab, { global: { plugins: plugins() }, attachTo: document.body })
    await settle()
    expect(wrapper.find('[data-test="locked-zhangwei"]').text()).toBe('已锁定')
    expect(wrapper.find('[data-test="locked-zhangwei"]').attributes('title')).toContain('锁定至')
    expect(wrapper.find('[data-test="locked-admin"]').text()).toBe('否')
    const rows = wrapper.findAll('[data-test="users-table"] .el-table__body tr')
    await rows[1].find('[data-test="unlock-user"]').trigger('click')
    await settle(8)
    expect(calls.filter((call) => call.url === '/users/u-rep/unlock')).toHaveLength(1)
    expect(calls.filter((call) => call.url.startsWith('/users?'))).toHaveLength(2)
    expect(wrapper.find('[data-test="locked-zhangwei"]').text()).toBe('否')
    wrapper.unmount()
  })
})
