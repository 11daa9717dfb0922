import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import UsersTab from '../src/views/admin/UsersTab.vue'
import MemberAvailability from '../src/views/admin/MemberAvailability.vue'
import { session } from '../src/session'
import type { Locale } from '../src/i18n'
import { errorsShown, fakeGateway, formItemText, plugins, settle, submitForm, type Call } from './helpers'

const admin = { id: 'u-admin', username: 'admin', display_name: '管理员', role: 'admin', team_id: null, active: true }
const rep = { id: 'u-rep', username: 'zhangwei', display_name: '张伟', role: 'sales_rep', team_id: 't1', active: true, email: null }
const team = { id: 't1', name: '华东销售部', manager_id: null, member_ids: ['u-rep'] }
const settings = { user_id: 'u-rep', username: 'zhangwei', team_id: 't1', active: true, capacity: 20, out_of_office_until: null, open_leads: 7 }

beforeEach(() => { session.me = { ...admin } })
afterEach(() => { vi.unstubAllGlobals(); document.body.innerHTML = ''; session.me = null })

type Answer = { status?: number; body?: unknown; headers?: Record<string, string> }
function gateway(answer: (call: Call) => Answer | undefined) {
  return fakeGateway((call) => {
    if (call.method === 'GET' && call.url.startsWith('/users?')) return { body: { items: [admin, rep], next_cursor: null } }
    if (call.method === 'GET' && call.url.startsWith('/teams?')) return { body: { items: [team], next_cursor: null } }
    return answer(call)
  })
}
const mountTab = (locale: Locale = 'zh-CN') => mount(UsersTab, { global: { plugins: plugins(locale) }, attachTo: document.body })
const row = (username: string) => [...document.querySelectorAll('[data-test="users-table"] .el-table__body tr')]
  .find((tr) => tr.textContent!.includes(username))!

describe('Users: unlock and assignment availability', () => {
  it('unlocks an account locked by failed sign-ins', async () => {
    const calls = gateway((call) => (call.method === 'POST' && call.url === '/users/u-rep/unlock' ? { status: 204 } : undefined))
    const wrapper = mountTab()
    await settle()
    ;(row('zhangwei').querySelector('[data-test="unlock-user"]') as HTMLElement).click()
    await settle()
    expect(calls.filter((call) => call.method === 'POST').map((call) => call.url)).toEqual(['/users/u-rep/unlock'])
    expect(document.querySelector('.el-message')!.textContent).toContain('已解除 zhangwei 的登录锁定')
    expect(document.querySelector('.error-alert')).toBeNull()
    wrapper.unmount()
  })

  it('a refused unlock (403, 503 with Retry-After) is the tab alert, in English too', async () => {
    let answer: Answer = { status: 403, body: { status: 403, title: 'Forbidden' } }
    gateway((call) => (call.url === '/users/u-rep/unlock' ? answer : undefined))
    const wrapper = mountTab('en')
    await settle()
    const unlock = () => (row('zhangwei').querySelector('[data-test="unlock-user"]') as HTMLElement).click()
    unlock()
    await settle()
    expect(document.querySelector('.error-alert')!.textContent).toContain('You are not allowed to do this.')
    answer = { status: 503, body: { status: 503 }, headers: { 'Retry-After': '5' } }
    unlock()
    await settle()
    expect(document.querySelector('.error-alert')!.textContent).toContain('try again in 5 s')
    expect(document.querySelector('.el-message')).toBeNull()
    wrapper.unmount()
  })

  it("shows and changes a member's availability in the user's dialog: capacity, on leave until", async () => {
    const calls = gateway((call) => {
      if (call.url !== '/assignment/members/u-rep') return undefined
      if (call.method === 'GET') return { body: settings }
      return { body: { ...settings, ...(call.body as object) } }
    })
    const wrapper = mountTab()
    await settle()
    ;(row('zhangwei').querySelector('[data-test="edit-user"]') as HTMLElement).click()
    await settle()
    const panel = document.querySelector('[data-test="member-availability"]')!
    expect(panel.querySelector('[data-test="member-open-leads"]')!.textContent).toContain('未关闭线索: 7')
    expect((panel.querySelector('#member-capacity') as HTMLInputElement).value).toBe('20')
    const member = wrapper.findComponent(MemberAvailability).vm as unknown as { form: { capacity: number | null; onLeave: boolean; until: string } }
    member.form.capacity = 5
    member.form.onLeave = true
    member.form.until = '2027-01-10T18:00:00+08:00'
    await settle()
    submitForm('[data-test="member-form"]')
    await settle()
    const put = calls.find((call) => call.method === 'PUT')!
    expect(put.body).toEqual({ capacity: 5, out_of_office_until: '2027-01-10T18:00:00+08:00' })
    expect(document.querySelector('.el-message')!.textContent).toContain('分配设置已保存')

    // back from leave, capacity unlimited
    member.form.onLeave = false
    member.form.capacity = null
    await settle()
    submitForm('[data-test="member-form"]')
    await settle()
    expect(calls.filter((call) => call.method === 'PUT').at(-1)!.body).toEqual({ capacity: null, out_of_office_until: null })
    // the user's own form was not sent
    expect(calls.some((call) => call.method === 'PATCH')).toBe(false)
    wrapper.unmount()
  })

  it('a 422 is shown at the capacity and what was typed stays; a 503 is an alert with Retry-After', async () => {
    let answer: Answer = { status: 422, body: { status: 422, errors: { capacity: ['Must be greater than or equal to 0 and less than or equal to 100000.'] } } }
    gateway((call) => {
      if (call.url !== '/assignment/members/u-rep') return undefined
      return call.method === 'GET' ? { body: settings } : answer
    })
    const wrapper = mountTab()
    await settle()
    ;(row('zhangwei').querySelector('[data-test="edit-user"]') as HTMLElement).click()
    await settle()
    const member = wrapper.findComponent(MemberAvailability).vm as unknown as { form: { capacity: number | null; onLeave: boolean; until: string } }
    member.form.capacity = 3
    member.form.onLeave = true
    member.form.until = '2027-02-01T09:00:00+08:00'
    await settle()
    submitForm('[data-test="member-form"]')
    await settle()
    await errorsShown()
    expect(formItemText('#member-capacity')).toContain('Must be greater than or equal to 0')
    expect(member.form).toEqual({ capacity: 3, onLeave: true, until: '2027-02-01T09:00:00+08:00' })
    answer = { status: 503, body: { status: 503 }, headers: { 'Retry-After': '9' } }
    submitForm('[data-test="member-form"]')
    await settle()
    expect(document.querySelector('[data-test="member-error"]')!.textContent).toContain('请 9 秒后重试')
    expect(member.form.capacity).toBe(3)
    wrapper.unmount()
  })

  it("a member outside a manager's teams: the 403 is shown in place of the settings", async () => {
    gateway((call) => (call.url === '/assignment/members/u-rep'
      ? { status: 403, body: { status: 403, detail: 'Managers manage the members of their own teams only.' } } : undefined))
    const wrapper = mount(MemberAvailability, { props: { userId: 'u-rep' }, global: { plugins: plugins() }, attachTo: document.body })
    await settle()
    expect(document.querySelector('[data-test="member-availability"] [role="alert"]')!.textContent).toContain('您没有执行此操作的权限')
    expect(document.querySelector('[data-test="member-form"]')).toBeNull()
    wrapper.unmount()
  })
})
